#pragma once
#include "core/Image.h"

#include <vtkSmartPointer.h>

class vtkImageData;

namespace liverseg::render {

// A vtkImageData that shares the voxels of `image` (no copy) and carries its whole geometry:
// dimensions, spacing, origin and direction matrix, so VTK world coordinates are physical
// LPS millimetres. The caller keeps `image` alive, and its voxel buffer in place, for as
// long as the vtkImageData is used; after changing voxels in place call Modified() on the
// vtkImageData's scalars.
vtkSmartPointer<vtkImageData> shareAsVtkImage(const core::CtVolume& image);
vtkSmartPointer<vtkImageData> shareAsVtkImage(const core::LabelMap& image);

}  // namespace liverseg::render

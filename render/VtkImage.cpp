#include "render/VtkImage.h"

#include <vtkImageData.h>
#include <vtkPointData.h>
#include <vtkShortArray.h>
#include <vtkUnsignedCharArray.h>

#include <type_traits>

namespace liverseg::render {

namespace {

template <typename VtkArray, typename Voxel>
vtkSmartPointer<vtkImageData> share(const core::Image3D<Voxel>& image) {
    static_assert(std::is_same_v<typename VtkArray::ValueType, Voxel>, "VTK array type must match the voxels");
    const core::Geometry& geometry = image.geometry();
    auto vtkImage = vtkSmartPointer<vtkImageData>::New();
    vtkImage->SetDimensions(int(geometry.size[0]), int(geometry.size[1]), int(geometry.size[2]));
    vtkImage->SetSpacing(geometry.spacing.data());
    vtkImage->SetOrigin(geometry.origin.data());
    double direction[9];
    for (int row = 0; row < 3; ++row) {
        for (int column = 0; column < 3; ++column) direction[row * 3 + column] = geometry.direction(row, column);
    }
    vtkImage->SetDirectionMatrix(direction);

    auto voxels = vtkSmartPointer<VtkArray>::New();
    voxels->SetNumberOfComponents(1);
    // VTK only reads these voxels; save = 1 tells it the buffer is not its to free.
    voxels->SetArray(const_cast<Voxel*>(image.voxels().data()), vtkIdType(image.voxelCount()), 1);
    vtkImage->GetPointData()->SetScalars(voxels);
    return vtkImage;
}

}  // namespace

vtkSmartPointer<vtkImageData> shareAsVtkImage(const core::CtVolume& image) {
    return share<vtkShortArray>(image);
}

vtkSmartPointer<vtkImageData> shareAsVtkImage(const core::LabelMap& image) {
    return share<vtkUnsignedCharArray>(image);
}

}  // namespace liverseg::render

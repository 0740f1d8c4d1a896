#pragma once
#include <filesystem>

namespace liverseg::core {

// Checks a NIfTI-1 file (.nii or .nii.gz) for what ITK's NIfTI reader (niftilib) would
// silently "repair" or choke on, before any voxel buffer is allocated:
//  - dimensions <= 0 (niftilib reads them as 1),
//  - a header promising more voxel bytes than the file holds (truncated or lying header),
//  - NaN or infinite float voxels (niftilib replaces them by 0).
// Throws InputError naming the file and the problem. Other NIfTI versions pass through.
void precheckNifti(const std::filesystem::path& path, unsigned long long maxVoxels);

}  // namespace liverseg::core

#pragma once
#include "core/Image.h"

namespace liverseg::core {

// Keeps only the largest 6-connected foreground component (any non-zero label counts as
// foreground; kept voxels keep their value). Returns the number of voxels removed.
std::size_t keepLargestComponent(LabelMap& labels);

// Fills background regions that are enclosed in their axial slice (not 4-connected to the
// slice border) with `fillValue`, as a liver's vessels and lesions should be. Slice by
// slice, because a hole open at the first or last slice is still a hole. Returns voxels filled.
std::size_t fillHolesPerSlice(LabelMap& labels, std::uint8_t fillValue = 1);

// Dice overlap of the foreground (non-zero) of two label maps on the same grid; defined as
// 1 when both are empty.
double diceCoefficient(const LabelMap& a, const LabelMap& b);

}  // namespace liverseg::core

#pragma once
#include "core/Image.h"

#include <array>
#include <cstdint>

namespace liverseg::core {

struct PhantomOptions {
    std::uint64_t seed = 1;
    std::array<std::size_t, 3> size{256, 256, 96};
    Eigen::Vector3d spacing{1.5, 1.5, 2.5};  // anisotropic like clinical CT
};

struct PhantomCase {
    CtVolume ct;       // int16 HU
    LabelMap liver;    // 1 = liver, on exactly ct's grid
};

// A synthetic abdominal CT: air around a body of fat and muscle, a liver (with noise and
// enhancing vessels) whose shape varies with the seed, kidneys, spleen and spine, with
// realistic Hounsfield values. Deterministic for a given seed and size on every platform.
PhantomCase makeAbdominalPhantom(const PhantomOptions& options);

}  // namespace liverseg::core

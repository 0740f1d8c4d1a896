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
    CtVolume ct;       // int16 HU, clamped to [-1024, 3071]
    LabelMap liver;    // 1 = liver (vessels inside it included, as in LiTS), on exactly ct's grid
};

// A synthetic abdominal CT (portal venous look): air (-1000) around a body of skin, fat
// (-100) and muscle (50) with ribs; lung bases and heart above the diaphragm; a liver
// (60 HU with texture, portal and hepatic vein trees ~160-170 HU) in the patient's right
// upper abdomen whose shape varies with the seed; gallbladder, stomach with an air-fluid
// level, bowel with gas, pancreas, spleen, kidneys (cortex 155, medulla 30), aorta, vena
// cava and spine; ~12 HU noise over the body.
//
// Geometry: identity direction (LPS: index x toward the patient's left, y posterior,
// z superior), origin chosen so the volume is centred on (0, 0, 0). The anatomy is defined
// in millimetres of a reference patient and scaled to the in-plane field of view (the trunk
// fills it as in a 400 x 300 mm clinical FOV), so a seed gives the same patient at any size
// and spacing, with organs identical in millimetres whenever the in-plane field of view is;
// the craniocaudal extent decides how much of the abdomen is covered.
//
// Deterministic: the same options give the same voxels on every platform (own generators,
// no library distributions or transcendental functions). The liver mask is one 6-connected
// piece. Throws std::invalid_argument for a zero size or non-positive spacing.
PhantomCase makeAbdominalPhantom(const PhantomOptions& options);

}  // namespace liverseg::core

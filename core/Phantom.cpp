// A synthetic abdominal CT. The anatomy is built in an "anatomy frame": millimetres of a
// reference adult imaged with a 400 mm field of view, origin at the centre of the volume,
// axes as ITK's LPS (+x patient left, +y posterior, +z superior). The frame is scaled onto
// the volume's physical extent, so a seed describes one patient whatever the voxel grid.
//
// Construction: a tissue label per voxel is painted organ by organ (later organs win where
// their rules allow), the liver is reduced to its largest connected piece, and the labels
// are turned into Hounsfield units with organ texture, Gaussian-like noise and a small
// in-plane blur standing in for the scanner's point spread.
//
// Same bits on every platform: everything that decides a voxel uses only + - * / sqrt
// floor (exactly rounded in IEEE 754), integer hashing and our own generators; never
// sin/exp/pow or <random>'s distributions, whose results differ between libraries.
#include "core/Phantom.h"

#include "core/LabelOps.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace liverseg::core {
namespace {

// ---------------------------------------------------------------------------------------
// Small vector arithmetic with a fixed evaluation order (Eigen may reorder reductions).

struct Vec {
    double x = 0, y = 0, z = 0;
};
Vec operator+(Vec a, Vec b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Vec operator-(Vec a, Vec b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
Vec operator*(Vec a, double s) { return {a.x * s, a.y * s, a.z * s}; }
Vec times(Vec a, Vec b) { return {a.x * b.x, a.y * b.y, a.z * b.z}; }
Vec over(Vec a, Vec b) { return {a.x / b.x, a.y / b.y, a.z / b.z}; }
double dot(Vec a, Vec b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
double length(Vec a) { return std::sqrt(dot(a, a)); }
Vec cross(Vec a, Vec b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
Vec normalized(Vec a) {
    const double n = length(a);
    return n > 0 ? a * (1.0 / n) : Vec{0, 0, 1};
}
double square(double v) { return v * v; }
double clamp01(double v) { return std::min(1.0, std::max(0.0, v)); }
double clampTo(double v, double low, double high) { return std::min(high, std::max(low, v)); }
double smoothstep(double t) { return t * t * (3 - 2 * t); }

// Polynomial smooth minimum: unions two distance-like values with a fillet of width k.
double smoothMin(double a, double b, double k) {
    const double h = clamp01(0.5 + 0.5 * (b - a) / k);
    return b + (a - b) * h - k * h * (1 - h);
}

// Approximate signed distance (mm) to an axis-aligned ellipsoid with semi-axes `radii`,
// `q` relative to its centre: exact on the axes, a good bound elsewhere.
double ellipsoidDistance(Vec q, Vec radii) {
    const double k0 = length(over(q, radii));
    const double k1 = length(over(q, times(radii, radii)));
    if (k1 == 0) return -std::min({radii.x, radii.y, radii.z});
    return k0 * (k0 - 1) / k1;
}

bool insideEllipsoid(Vec q, Vec radii) {
    return square(q.x / radii.x) + square(q.y / radii.y) + square(q.z / radii.z) <= 1;
}

// An orthonormal frame for tilted organs.
struct Frame {
    Vec centre, u, v, w;
    Vec local(Vec p) const {
        const Vec d = p - centre;
        return {dot(d, u), dot(d, v), dot(d, w)};
    }
    Vec toBody(Vec l) const { return centre + u * l.x + v * l.y + w * l.z; }
};

// w along `longAxis`; u as close to `widthAxis` as orthogonality allows.
Frame frameOf(Vec centre, Vec longAxis, Vec widthAxis) {
    const Vec w = normalized(longAxis);
    const Vec u = normalized(widthAxis - w * dot(widthAxis, w));
    return {centre, u, cross(w, u), w};
}

// A straight vessel or bowel piece whose radius changes linearly from a to b.
struct Tube {
    Vec a, b;
    double radiusA = 1, radiusB = 1;
};

struct TubeHit {
    double distance;  // to the surface, negative inside
    Vec axisPoint;
    double radius;
};

TubeHit hitTube(const Tube& tube, Vec p) {
    const Vec ab = tube.b - tube.a;
    const double lengthSquared = dot(ab, ab);
    const double s = lengthSquared > 0 ? clamp01(dot(p - tube.a, ab) / lengthSquared) : 0.0;
    const Vec axis = tube.a + ab * s;
    const double radius = tube.radiusA + (tube.radiusB - tube.radiusA) * s;
    return {length(p - axis) - radius, axis, radius};
}

// Tubes joining consecutive points, radii interpolated between the points' radii.
std::vector<Tube> tubeChain(const std::vector<std::pair<Vec, double>>& points) {
    std::vector<Tube> chain;
    for (std::size_t i = 1; i < points.size(); ++i) {
        chain.push_back({points[i - 1].first, points[i].first, points[i - 1].second, points[i].second});
    }
    return chain;
}

// ---------------------------------------------------------------------------------------
// Deterministic randomness: splitmix64 for hashing and seeding, xoshiro256** for streams.

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;

std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::uint64_t hashOf(std::uint64_t a, std::uint64_t b) { return mix64(a ^ mix64(b + kGolden)); }

// Independent random streams per organ, so adding an organ never changes the others.
enum class Stream : std::uint64_t {
    Trunk = 1, Liver, PortalVeins, HepaticVeins, Gallbladder, Kidneys, Spleen, Stomach, Colon,
    SmallBowel, Mesentery, Spine, VoxelNoise, Texture
};

class Random {
public:
    Random(std::uint64_t seed, Stream stream) {
        std::uint64_t state = hashOf(seed, std::uint64_t(stream));
        for (auto& word : state_) {
            state += kGolden;
            word = mix64(state);
        }
    }

    std::uint64_t bits() {  // xoshiro256**
        const std::uint64_t result = rotateLeft(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotateLeft(state_[3], 45);
        return result;
    }
    double uniform() { return double(bits() >> 11) * 0x1.0p-53; }
    double uniform(double low, double high) { return low + (high - low) * uniform(); }
    bool chance(double probability) { return uniform() < probability; }

    // Irwin-Hall: the sum of 12 uniforms minus 6 has mean 0, variance 1 and a bell close to
    // the normal (tails cut at 6 sd). Only additions, so bit-identical everywhere.
    double normal(double mean, double sd) {
        double sum = 0;
        for (int i = 0; i < 12; ++i) sum += uniform();
        return mean + sd * (sum - 6.0);
    }
    Vec jitter(double sd) { return {normal(0, sd), normal(0, sd), normal(0, sd)}; }
    Vec direction() {
        for (;;) {
            const Vec v{uniform(-1, 1), uniform(-1, 1), uniform(-1, 1)};
            const double n2 = dot(v, v);
            if (n2 > 1e-4 && n2 <= 1) return v * (1.0 / std::sqrt(n2));
        }
    }

private:
    static std::uint64_t rotateLeft(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> state_{};
};

// Approximately standard normal noise for one voxel, from a hash of its index: the sum of
// four 16-bit uniforms (Irwin-Hall 4), standardised. The in-plane blur applied afterwards
// sums nine such values, which makes the result closer still to Gaussian.
double voxelNoise(std::uint64_t key, std::uint64_t index) {
    const std::uint64_t h = hashOf(key, index);
    const double sum = double((h & 0xFFFF) + ((h >> 16) & 0xFFFF) + ((h >> 32) & 0xFFFF) + (h >> 48));
    return (sum - 2.0 * 65535.0) * (1.0 / 37837.23);  // sd of the sum: 65536 / sqrt(3)
}

// Smooth value noise in [-1, 1] with features of about `cell` mm.
double valueNoise(std::uint64_t key, Vec p, double cell) {
    const Vec q = p * (1.0 / cell);
    const double fx = std::floor(q.x), fy = std::floor(q.y), fz = std::floor(q.z);
    const auto ix = std::int64_t(fx), iy = std::int64_t(fy), iz = std::int64_t(fz);
    const double tx = smoothstep(q.x - fx), ty = smoothstep(q.y - fy), tz = smoothstep(q.z - fz);
    auto corner = [&](std::int64_t dx, std::int64_t dy, std::int64_t dz) {
        const std::uint64_t h = key ^ (std::uint64_t(ix + dx) * 0x8CB92BA72F3D8DD7ull) ^
                                (std::uint64_t(iy + dy) * 0xD6E8FEB86659FD93ull) ^
                                (std::uint64_t(iz + dz) * 0xA0761D6478BD642Full);
        return double(mix64(h) >> 11) * 0x1.0p-52 - 1.0;
    };
    auto lerp = [](double a, double b, double t) { return a + (b - a) * t; };
    const double x00 = lerp(corner(0, 0, 0), corner(1, 0, 0), tx), x10 = lerp(corner(0, 1, 0), corner(1, 1, 0), tx);
    const double x01 = lerp(corner(0, 0, 1), corner(1, 0, 1), tx), x11 = lerp(corner(0, 1, 1), corner(1, 1, 1), tx);
    return lerp(lerp(x00, x10, ty), lerp(x01, x11, ty), tz);
}

// ---------------------------------------------------------------------------------------
// Tissues and their appearance (portal venous phase).

enum class Tissue : std::uint8_t {
    Outside, Skin, SubcutaneousFat, Muscle, PreperitonealFat, VisceralFat, Lung, Heart,
    Liver, PortalVeinInLiver, HepaticVeinInLiver,
    PortalVein, Vein, Artery, KidneyCortex, KidneyMedulla, RenalSinus, Fluid, Spleen, Pancreas,
    StomachWall, StomachFluid, BowelWall, BowelFluid, ColonContent, Gas, SmallVessel,
    CorticalBone, CancellousBone, PosteriorElement, Disc, SpinalCanal, Rib, Cartilage,
    Count
};

struct Look {
    double hu = 0;
    double textureAmplitude = 0;  // HU of smooth organ texture
    double textureCell = 1;       // mm (anatomy frame)
};

Look lookOf(Tissue tissue) {
    switch (tissue) {
    case Tissue::Outside: return {-1000};
    case Tissue::Skin: return {45};
    case Tissue::SubcutaneousFat: return {-105};
    case Tissue::Muscle: return {50};
    case Tissue::PreperitonealFat: return {-100};
    case Tissue::VisceralFat: return {-95};
    case Tissue::Lung: return {-860, 35, 5};
    case Tissue::Heart: return {125, 6, 10};
    case Tissue::Liver: return {60, 6, 6};
    case Tissue::PortalVeinInLiver: return {172};
    case Tissue::HepaticVeinInLiver: return {158};
    case Tissue::PortalVein: return {170};
    case Tissue::Vein: return {145};
    case Tissue::Artery: return {185};
    case Tissue::KidneyCortex: return {155, 6, 5};
    case Tissue::KidneyMedulla: return {32, 10, 5};
    case Tissue::RenalSinus: return {-90, 10, 4};
    case Tissue::Fluid: return {8};
    case Tissue::Spleen: return {48, 4, 6};
    case Tissue::Pancreas: return {45, 14, 3.5};
    case Tissue::StomachWall: return {70};
    case Tissue::StomachFluid: return {14, 4, 8};
    case Tissue::BowelWall: return {65};
    case Tissue::BowelFluid: return {20, 6, 6};
    case Tissue::ColonContent: return {-40, 80, 4};
    case Tissue::Gas: return {-1000};
    case Tissue::SmallVessel: return {160};
    case Tissue::CorticalBone: return {850, 60, 3};
    case Tissue::CancellousBone: return {240, 45, 2.5};
    case Tissue::PosteriorElement: return {560, 80, 3};
    case Tissue::Disc: return {85, 8, 4};
    case Tissue::SpinalCanal: return {20};
    case Tissue::Rib: return {480, 60, 3};
    case Tissue::Cartilage: return {115, 10, 4};
    case Tissue::Count: break;
    }
    throw std::logic_error("phantom: tissue without a look");
}

bool isLiverTissue(Tissue t) {
    return t == Tissue::Liver || t == Tissue::PortalVeinInLiver || t == Tissue::HepaticVeinInLiver;
}

bool isHollowLumen(Tissue t) {
    return t == Tissue::StomachFluid || t == Tissue::BowelFluid || t == Tissue::ColonContent || t == Tissue::Gas;
}

// What fills the peritoneal cavity before the solid organs take their place.
bool isAbdominalContent(Tissue t) {
    return t == Tissue::VisceralFat || t == Tissue::SmallVessel || t == Tissue::Pancreas ||
           t == Tissue::StomachWall || t == Tissue::BowelWall || t == Tissue::PortalVein || isHollowLumen(t);
}

bool isSoftOrgan(Tissue t) { return isAbdominalContent(t) || isLiverTissue(t) || t == Tissue::Fluid; }

// ---------------------------------------------------------------------------------------
// The voxel grid of tissue labels and a painter over bounding boxes (anatomy frame).

struct Box {
    Vec low, high;
};

Box boxAround(Vec centre, Vec half) { return {centre - half, centre + half}; }

Box boxOf(const Tube& tube, double margin = 1) {
    const double r = std::max(tube.radiusA, tube.radiusB) + margin;
    return {{std::min(tube.a.x, tube.b.x) - r, std::min(tube.a.y, tube.b.y) - r, std::min(tube.a.z, tube.b.z) - r},
            {std::max(tube.a.x, tube.b.x) + r, std::max(tube.a.y, tube.b.y) + r, std::max(tube.a.z, tube.b.z) + r}};
}

constexpr double kEverywhere = 1e6;

class TissueGrid {
public:
    TissueGrid(const Geometry& geometry, double scale)
        : size_(geometry.size), tissue_(geometry.voxelCount(), Tissue::Outside) {
        for (int axis = 0; axis < 3; ++axis) {
            lowIndexAt_[axis] = geometry.origin[axis] / scale;
            stepAt_[axis] = geometry.spacing[axis] / scale;
            auto& coordinates = axes_[axis];
            coordinates.resize(size_[axis]);
            for (std::size_t i = 0; i < size_[axis]; ++i) {
                coordinates[i] = (geometry.origin[axis] + double(i) * geometry.spacing[axis]) / scale;
            }
        }
    }

    // Replaces each label in `box` by rule(position, label).
    template <typename Rule>
    void paint(const Box& box, Rule&& rule) {
        const auto [x0, x1] = indexRange(0, box.low.x, box.high.x);
        const auto [y0, y1] = indexRange(1, box.low.y, box.high.y);
        const auto [z0, z1] = indexRange(2, box.low.z, box.high.z);
        for (std::size_t z = z0; z < z1; ++z) {
            for (std::size_t y = y0; y < y1; ++y) {
                Tissue* row = &tissue_[offset(0, y, z)];
                for (std::size_t x = x0; x < x1; ++x) row[x] = rule(Vec{axes_[0][x], axes_[1][y], axes_[2][z]}, row[x]);
            }
        }
    }

    // Sets every label to rule(x + nx * y, position).
    template <typename Rule>
    void paintColumns(Rule&& rule) {
        std::size_t v = 0;
        for (std::size_t z = 0; z < size_[2]; ++z) {
            for (std::size_t y = 0; y < size_[1]; ++y) {
                for (std::size_t x = 0; x < size_[0]; ++x, ++v) {
                    tissue_[v] = rule(x + size_[0] * y, Vec{axes_[0][x], axes_[1][y], axes_[2][z]});
                }
            }
        }
    }

    Vec position(std::size_t x, std::size_t y, std::size_t z) const { return {axes_[0][x], axes_[1][y], axes_[2][z]}; }
    std::size_t offset(std::size_t x, std::size_t y, std::size_t z) const {
        return x + size_[0] * (y + size_[1] * z);
    }
    const std::array<std::size_t, 3>& size() const { return size_; }
    std::vector<Tissue>& tissue() { return tissue_; }
    const std::vector<Tissue>& tissue() const { return tissue_; }

private:
    // Half-open index range covering [low, high] (anatomy mm) on one axis, one voxel generous.
    std::pair<std::size_t, std::size_t> indexRange(int axis, double low, double high) const {
        const double n = double(size_[axis]);
        const double first = clampTo(std::floor((low - lowIndexAt_[axis]) / stepAt_[axis]), 0, n);
        const double last = clampTo(std::ceil((high - lowIndexAt_[axis]) / stepAt_[axis]) + 1, 0, n);
        return {std::size_t(first), std::size_t(last)};
    }

    std::array<std::size_t, 3> size_;
    std::array<std::vector<double>, 3> axes_;
    std::array<double, 3> lowIndexAt_{}, stepAt_{};
    std::vector<Tissue> tissue_;
};

// ---------------------------------------------------------------------------------------
// Trunk: skin, subcutaneous fat, muscle wall with ribs, the diaphragm, lungs and heart above
// it, visceral fat below. Everything else is painted into this.

struct Trunk {
    double halfWidth = 0;       // skin to midline, left-right
    double anteriorDepth = 0;   // skin to the centre, front
    double posteriorDepth = 0;  // skin to the centre, back
    double fat = 0;             // subcutaneous fat in front; 1.2x at the sides, 0.7x at the back
    double spineY = 0;          // centre of the vertebral bodies
    double domeRight = 0, domeLeft = 0, centralTendon = 0;  // diaphragm heights
    double twelfthRib = 0;      // height of the 12th rib where it leaves the spine
};

constexpr double kSkin = 1.8;
constexpr double kDiaphragm = 5;
constexpr double kPreperitonealFat = 2.5;

Trunk drawTrunk(std::uint64_t seed) {
    Random random(seed, Stream::Trunk);
    Trunk trunk;
    trunk.fat = random.uniform(13, 28);
    trunk.halfWidth = random.uniform(130, 140) + 1.2 * trunk.fat;
    trunk.anteriorDepth = random.uniform(86, 94) + trunk.fat;
    trunk.spineY = random.uniform(40, 47);
    trunk.posteriorDepth = trunk.spineY + 62 + 0.7 * trunk.fat;
    trunk.domeRight = random.uniform(98, 110);
    trunk.domeLeft = trunk.domeRight - random.uniform(8, 18);
    trunk.centralTendon = trunk.domeRight - random.uniform(18, 26);
    trunk.twelfthRib = random.uniform(-12, 6);
    return trunk;
}

struct BodyDepth {
    double depth;      // mm under the skin, negative outside
    double lateral;    // 1 at the sides, 0 front and back
    double posterior;  // 1 at the back, 0 in the front half
};

// Cross-section: an ellipse in front, a squarer superellipse blend at the back (the patient
// lies on the table); depth from the first-order distance (rho - 1) / |grad rho|.
BodyDepth bodyDepth(const Trunk& trunk, double x, double y) {
    const bool back = y > 0;
    const double depthScale = back ? trunk.posteriorDepth : trunk.anteriorDepth;
    const double u = x / trunk.halfWidth, v = y / depthScale;
    const double uu = u * u, vv = v * v;
    double f = uu + vv, fu = 2 * u, fv = 2 * v;
    if (back) {
        const double q = std::sqrt(uu * uu + vv * vv);
        f = 0.5 * (uu + vv) + 0.5 * q;
        fu = q > 0 ? u + u * uu / q : 0;
        fv = q > 0 ? v + v * vv / q : 0;
    }
    if (f < 1e-12) return {1e9, 0, 0};
    const double rho = std::sqrt(f);
    const double gradient = std::sqrt(square(fu / trunk.halfWidth) + square(fv / depthScale)) / (2 * rho);
    return {(1 - rho) / gradient, uu / (uu + vv), back ? vv / (uu + vv) : 0.0};
}

double subcutaneousFat(const Trunk& trunk, const BodyDepth& body) {
    return trunk.fat * (1 + 0.2 * body.lateral - 0.3 * body.posterior);
}

double muscleWall(Vec p, const BodyDepth& body) {
    if (p.y < 0 && std::abs(p.x) < 4) return 3.5;  // linea alba between the recti
    return 11 + 3 * body.lateral - 2 * body.posterior;
}

double diaphragmHeight(const Trunk& trunk, double x, double y) {
    const double right = trunk.domeRight - square(x + 60) / 130 - square(y) / 110;
    const double left = trunk.domeLeft - square(x - 65) / 130 - square(y - 5) / 110;
    const double centre = trunk.centralTendon - square(x) / 600 - square(y + 10) / 500;
    return std::max({right, left, centre});
}

// The trunk along one (x, y) column: the layers under the skin, where the diaphragm is and
// how far round the body the column lies are the same on every slice.
struct TrunkColumn {
    Tissue layer = Tissue::Outside;  // Outside, Skin, SubcutaneousFat, Muscle (wall), PreperitonealFat or VisceralFat
    double depthInWall = 0;          // mm under the outer surface of the muscle wall
    double around = 0;               // 0 at the back, 1 at the front
    double diaphragm = 0;            // its height, for columns in the cavity
};

TrunkColumn trunkColumn(const Trunk& trunk, double x, double y) {
    const BodyDepth body = bodyDepth(trunk, x, y);
    TrunkColumn column;
    const double radius = std::sqrt(x * x + y * y);
    column.around = radius > 0 ? 0.5 * (1 - y / radius) : 0.0;
    column.diaphragm = diaphragmHeight(trunk, x, y);
    const double fatEnd = kSkin + subcutaneousFat(trunk, body);
    const double wallEnd = fatEnd + muscleWall({x, y, 0}, body);
    column.depthInWall = body.depth - fatEnd;
    column.layer = body.depth < 0         ? Tissue::Outside
                   : body.depth < kSkin   ? Tissue::Skin
                   : body.depth < fatEnd  ? Tissue::SubcutaneousFat
                   : body.depth < wallEnd ? Tissue::Muscle
                   // A thin fat line inside the wall keeps the liver (60 HU) apart from muscle (50 HU).
                   : body.depth < wallEnd + kPreperitonealFat ? Tissue::PreperitonealFat
                                                              : Tissue::VisceralFat;
    return column;
}

// Ribs run round the wall from the spine, falling ~140 mm by the front, lower ones shorter.
Tissue ribOrMuscle(const Trunk& trunk, const TrunkColumn& column, double z) {
    if (column.depthInWall < 2 || column.depthInWall > 9) return Tissue::Muscle;
    constexpr double kRibPitch = 34, kRibFall = 140;
    const double level = (z + kRibFall * column.around - trunk.twelfthRib) / kRibPitch;
    const double rib = std::floor(level + 0.5);
    if (rib < 0 || rib > 8 || std::abs(level - rib) * kRibPitch > 4.5) return Tissue::Muscle;
    const double ribEnd = std::min(0.88, 0.38 + 0.12 * rib);
    if (column.around < 0.08 || column.around > ribEnd) return Tissue::Muscle;
    return column.around > 0.64 ? Tissue::Cartilage : Tissue::Rib;
}

Tissue thoraxTissue(const Trunk& trunk, Vec p) {
    const Vec heartCentre{18, -28, trunk.centralTendon + 48};
    const Vec heartRadii{58, 46, 56};
    if (insideEllipsoid(p - heartCentre, heartRadii)) return Tissue::Heart;
    if (insideEllipsoid(p - heartCentre, heartRadii + Vec{5, 5, 5})) return Tissue::VisceralFat;  // epicardial fat
    if (square((p.x - 8) / 24) + square((p.y - trunk.spineY + 28) / 22) < 1) return Tissue::VisceralFat;  // mediastinum
    return Tissue::Lung;
}

Tissue trunkTissue(const Trunk& trunk, const TrunkColumn& column, Vec p) {
    if (column.layer == Tissue::Muscle) return ribOrMuscle(trunk, column, p.z);
    if (column.layer != Tissue::VisceralFat) return column.layer;
    if (p.z < column.diaphragm) return Tissue::VisceralFat;
    if (p.z < column.diaphragm + kDiaphragm) return Tissue::Muscle;
    return thoraxTissue(trunk, p);
}

void paintTrunk(TissueGrid& grid, const Trunk& trunk) {
    std::vector<TrunkColumn> columns;
    columns.reserve(grid.size()[0] * grid.size()[1]);
    for (std::size_t y = 0; y < grid.size()[1]; ++y) {
        for (std::size_t x = 0; x < grid.size()[0]; ++x) {
            const Vec p = grid.position(x, y, 0);
            columns.push_back(trunkColumn(trunk, p.x, p.y));
        }
    }
    grid.paintColumns([&](std::size_t column, Vec p) { return trunkTissue(trunk, columns[column], p); });
}

// Depth inside the peritoneal cavity (negative: in the wall or outside).
double cavityDepth(const Trunk& trunk, Vec p) {
    const BodyDepth body = bodyDepth(trunk, p.x, p.y);
    return body.depth - kSkin - subcutaneousFat(trunk, body) - muscleWall(p, body) - kPreperitonealFat;
}

// ---------------------------------------------------------------------------------------
// Hollow organs: stomach, duodenum, colon, small bowel.

// Paints the wall of each tube over abdominal content and its lumen (from `lumen`) inside;
// lumens of touching loops merge, walls never cover a lumen.
template <typename Lumen>
void paintHollow(TissueGrid& grid, const std::vector<Tube>& tubes, double wall, Tissue wallTissue, Lumen&& lumen) {
    for (const Tube& tube : tubes) {
        grid.paint(boxOf(tube), [&](Vec p, Tissue current) {
            if (!isAbdominalContent(current)) return current;
            const TubeHit hit = hitTube(tube, p);
            if (hit.distance >= 0) return current;
            if (hit.distance < -wall) return lumen(p, hit);
            return isHollowLumen(current) ? current : wallTissue;
        });
    }
}

void paintStomachAndDuodenum(TissueGrid& grid, std::uint64_t seed) {
    Random random(seed, Stream::Stomach);
    auto at = [&](double x, double y, double z) { return Vec{x, y, z} + random.jitter(4); };
    const double size = random.uniform(0.85, 1.15);
    const auto stomach = tubeChain({{at(55, 18, 72), 30 * size}, {at(52, -22, 45), 30 * size},
                                    {at(22, -50, 18), 21 * size}, {at(-10, -45, 8), 12}});
    const double gasLevel = random.uniform(-58, -35);  // supine: gas rises to the front
    paintHollow(grid, stomach, 4, Tissue::StomachWall,
                [&](Vec p, const TubeHit&) { return p.y < gasLevel ? Tissue::Gas : Tissue::StomachFluid; });
    const auto duodenum = tubeChain({{at(-10, -45, 8), 12}, {at(-35, -30, 5), 13}, {at(-48, -5, -25), 12},
                                     {at(-40, 8, -58), 11}, {at(5, 5, -62), 10}, {at(25, 0, -50), 10}});
    paintHollow(grid, duodenum, 2.5, Tissue::BowelWall, [](Vec, const TubeHit&) { return Tissue::BowelFluid; });
}

void paintColon(TissueGrid& grid, std::uint64_t seed) {
    Random random(seed, Stream::Colon);
    auto at = [&](double x, double y, double z) {
        const Vec point = Vec{x, y, z} + random.jitter(5);
        return std::make_pair(point, random.uniform(17, 24));
    };
    const auto colon = tubeChain({at(-82, -5, -175), at(-100, 12, -120), at(-102, 10, -75), at(-92, -25, -48),
                                  at(-55, -60, -50), at(0, -66, -68), at(55, -55, -40), at(95, -15, 5),
                                  at(106, 22, -40), at(104, 24, -110), at(85, 5, -165), at(45, -25, -195)});
    const std::uint64_t key = hashOf(seed, 77);
    paintHollow(grid, colon, 3, Tissue::BowelWall, [&](Vec p, const TubeHit& hit) {
        const bool bubble = valueNoise(key, p, 6) > 0.3;
        const bool gasCap = p.y < hit.axisPoint.y - 0.45 * hit.radius;
        return bubble || gasCap ? Tissue::Gas : Tissue::ColonContent;
    });
}

// A random walk of bowel loops confined to the lower abdomen, in front of the kidneys.
std::vector<Tube> smallBowelLoop(const Trunk& trunk, Random& random) {
    const Box region{{-75, -85, -210}, {75, 12, -40}};
    auto inRegion = [&](Vec p) {
        return p.x > region.low.x && p.x < region.high.x && p.y > region.low.y && p.y < region.high.y &&
               p.z > region.low.z && p.z < region.high.z && cavityDepth(trunk, p) > 8;
    };
    Vec position{random.uniform(-60, 60), random.uniform(-65, 0), random.uniform(-190, -55)};
    Vec direction = random.direction();
    const double radius = random.uniform(10, 13.5);
    std::vector<Tube> loop;
    for (int step = 0; step < 24; ++step) {
        Vec next = position;
        for (int attempt = 0; attempt < 8; ++attempt) {
            direction = normalized(direction + random.jitter(0.45));
            next = position + direction * 13;
            if (inRegion(next)) break;
            direction = normalized(Vec{0, -25, -120} - position);  // back towards the middle
            next = position + direction * 13;
        }
        loop.push_back({position, next, radius, radius});
        position = next;
    }
    return loop;
}

void paintSmallBowel(TissueGrid& grid, const Trunk& trunk, std::uint64_t seed) {
    Random random(seed, Stream::SmallBowel);
    for (int loopIndex = 0; loopIndex < 6; ++loopIndex) {
        const auto loop = smallBowelLoop(trunk, random);
        const bool hasGas = random.chance(0.4);
        paintHollow(grid, loop, 2.5, Tissue::BowelWall, [&](Vec p, const TubeHit& hit) {
            return hasGas && p.y < hit.axisPoint.y - 0.5 * hit.radius ? Tissue::Gas : Tissue::BowelFluid;
        });
    }
}

// Mesenteric vessels: short enhancing tubes in the fat between the loops.
void paintMesentery(TissueGrid& grid, std::uint64_t seed) {
    Random random(seed, Stream::Mesentery);
    for (int i = 0; i < 70; ++i) {
        const Vec start{random.uniform(-70, 70), random.uniform(-75, 15), random.uniform(-205, -30)};
        const Vec direction = random.direction();
        const Vec end = start + direction * random.uniform(15, 40);
        const double radius = random.uniform(1.0, 2.2);
        const Tube tube{start, end, radius, radius * 0.8};
        grid.paint(boxOf(tube), [&](Vec p, Tissue current) {
            return current == Tissue::VisceralFat && hitTube(tube, p).distance < 0 ? Tissue::SmallVessel : current;
        });
    }
}

// ---------------------------------------------------------------------------------------
// Pancreas with the splenic and superior mesenteric veins and the superior mesenteric artery.

template <typename Rule>
void paintTubes(TissueGrid& grid, const std::vector<Tube>& tubes, Rule&& rule) {
    for (const Tube& tube : tubes) {
        grid.paint(boxOf(tube), [&](Vec p, Tissue current) {
            return hitTube(tube, p).distance < 0 ? rule(current) : current;
        });
    }
}

Tissue overAbdominalContent(Tissue current, Tissue paint) { return isAbdominalContent(current) ? paint : current; }

// Returns the portal confluence (behind the pancreatic neck).
Vec paintPancreasAndMesenteric(TissueGrid& grid, const Trunk& trunk) {
    const double front = trunk.spineY - 16;  // anterior surface of the vertebral bodies
    const auto pancreas = tubeChain({{{-32, front - 42, -30}, 15}, {{-8, front - 48, -12}, 11},
                                     {{30, front - 36, -2}, 11}, {{70, front - 8, 12}, 9}});
    paintTubes(grid, pancreas, [](Tissue t) { return overAbdominalContent(t, Tissue::Pancreas); });
    const Vec confluence{-8, front - 30, -8};
    const auto splenicVein = tubeChain({{confluence, 5}, {{30, front - 24, 2}, 4}, {{70, front + 4, 16}, 4}});
    const auto mesentericVein = tubeChain({{{-14, front - 40, -150}, 4}, {{-12, front - 38, -60}, 5}, {confluence, 6}});
    const auto mesentericArtery = tubeChain({{{8, front - 14, -15}, 4}, {{5, front - 32, -50}, 3.5}, {{0, front - 40, -150}, 3}});
    auto portal = [](Tissue t) { return overAbdominalContent(t, Tissue::PortalVein); };
    paintTubes(grid, splenicVein, portal);
    paintTubes(grid, mesentericVein, portal);
    paintTubes(grid, mesentericArtery, [](Tissue t) { return overAbdominalContent(t, Tissue::Artery); });
    return confluence;
}

// ---------------------------------------------------------------------------------------
// Liver: a right lobe that tapers downward, a thin left lobe crossing the midline in front
// and a caudate lobe, smoothly united and deformed by random low-order spherical harmonics
// and bumps; scaled and shifted per seed.

constexpr int kHarmonics = 15;

// Real spherical harmonics of degree 1-3 as polynomials of a unit vector, each scaled to
// unit RMS over the sphere.
std::array<double, kHarmonics> harmonics(Vec n) {
    const double x = n.x, y = n.y, z = n.z;
    return {1.732 * x, 1.732 * y, 1.732 * z,
            3.873 * x * y, 3.873 * y * z, 3.873 * x * z, 1.936 * (x * x - y * y), 1.118 * (3 * z * z - 1),
            2.092 * y * (3 * x * x - y * y), 10.247 * x * y * z, 1.620 * y * (5 * z * z - 1),
            1.323 * z * (5 * z * z - 3), 1.620 * x * (5 * z * z - 1), 5.123 * z * (x * x - y * y),
            2.092 * x * (x * x - 3 * y * y)};
}

struct Bump {
    Vec centre;
    double radius, height;
};

class LiverShape {
public:
    explicit LiverShape(std::uint64_t seed) {
        Random random(seed, Stream::Liver);
        const Vec perAxis{random.uniform(0.92, 1.08), random.uniform(0.92, 1.08), random.uniform(0.9, 1.1)};
        scale_ = perAxis * random.uniform(0.93, 1.07);
        shift_ = random.jitter(3.5);
        leftLobeSize_ = random.uniform(0.75, 1.25);
        visceralBase_ = random.uniform(-40, -24);
        medialRise_ = random.uniform(0.25, 0.45);
        posteriorRise_ = random.uniform(0.4, 0.6);
        for (int i = 0; i < kHarmonics; ++i) {
            const double sd = i < 3 ? 2.5 : i < 8 ? 3.2 : 2.2;
            harmonicWeights_[std::size_t(i)] = random.normal(0, sd);
        }
        for (auto& bump : bumps_) {
            const Vec direction = random.direction();
            bump.centre = kCentre + direction * random.uniform(40, 80);
            bump.radius = random.uniform(25, 45);
            bump.height = random.normal(0, 6);
        }
    }

    // Approximate signed distance in mm (negative inside), body (anatomy) frame.
    double distance(Vec p) const {
        const Vec q = kCentre + over(p - kCentre - shift_, scale_);
        const double lobes = smoothMin(smoothMin(rightLobe(q), leftLobe(q), 20), caudateLobe(q), 12);
        return lobes - deformation(q);
    }

    // A point given in the canonical (unscaled) liver frame, in the body frame.
    Vec toBody(Vec canonical) const { return kCentre + times(canonical - kCentre, scale_) + shift_; }

    Box box() const {
        const Box canonical{{-165, -115, -80}, {100, 105, 140}};
        return {toBody(canonical.low) - Vec{25, 25, 25}, toBody(canonical.high) + Vec{25, 25, 25}};
    }

private:
    static constexpr Vec kCentre{-50, -5, 40};

    // Fills the right upper quadrant (the wall and diaphragm clip it) above the visceral
    // surface, a plane that rises medially and posteriorly: a wedge in sagittal and coronal
    // views, largest at the top, its tip low, lateral and anterior.
    double rightLobe(Vec q) const {
        constexpr Vec centre{-62, 4, 40}, radii{70, 84, 96};
        const double t = clampTo((q.z - centre.z) / radii.z, -1, 1);
        const double width = 0.86 + 0.14 * t;  // narrower downward
        const double lobe = ellipsoidDistance(q - centre, {radii.x * width, radii.y * width, radii.z});
        const double visceralHeight = visceralBase_ + medialRise_ * (q.x + 60) + posteriorRise_ * q.y;
        const double belowVisceralSurface = (visceralHeight - q.z) / std::sqrt(1 + square(medialRise_) + square(posteriorRise_));
        return -smoothMin(-lobe, -belowVisceralSurface, 15);
    }

    // A thin wedge across the midline in front of the stomach.
    double leftLobe(Vec q) const {
        const Vec centre{6, -38, 58};
        const double reach = 62 * leftLobeSize_;
        const double s = clampTo((q.x - centre.x) / reach, -1, 1);  // thinner towards the left
        const Vec local{q.x - centre.x, q.y - centre.y, q.z - (centre.z - 6 * s)};
        return ellipsoidDistance(local, {reach, 30 * (1 - 0.45 * s), 32 * (1 - 0.35 * s)});
    }

    static double caudateLobe(Vec q) { return ellipsoidDistance(q - Vec{-16, 14, 42}, {18, 16, 26}); }

    double deformation(Vec q) const {
        const Vec d = q - kCentre;
        const double r = length(d);
        double total = 0;
        if (r > 1e-9) {
            const auto basis = harmonics(d * (1.0 / r));
            for (std::size_t i = 0; i < basis.size(); ++i) total += harmonicWeights_[i] * basis[i];
        }
        for (const Bump& bump : bumps_) {
            const double u = dot(q - bump.centre, q - bump.centre) / square(bump.radius);
            if (u < 1) total += bump.height * (1 - u) * (1 - u) * (1 - u);
        }
        return total;
    }

    Vec scale_{1, 1, 1};
    Vec shift_{};
    double leftLobeSize_ = 1;
    double visceralBase_ = -15, medialRise_ = 0.35, posteriorRise_ = 0.5;
    std::array<double, kHarmonics> harmonicWeights_{};
    std::array<Bump, 6> bumps_{};
};

void paintLiver(TissueGrid& grid, const LiverShape& liver) {
    grid.paint(liver.box(), [&](Vec p, Tissue current) {
        if (!isAbdominalContent(current)) return current;  // stays in the cavity, under the diaphragm
        return liver.distance(p) < 0 ? Tissue::Liver : current;
    });
}

void paintGallbladder(TissueGrid& grid, const LiverShape& liver, std::uint64_t seed) {
    Random random(seed, Stream::Gallbladder);
    const Vec centre = liver.toBody({-40, -30, -5}) + random.jitter(3);
    const Frame frame = frameOf(centre, Vec{0.15, 0.5, 1} + random.jitter(0.15), {1, 0, 0});
    const Vec radii{random.uniform(13, 18), random.uniform(13, 18), random.uniform(30, 42)};
    grid.paint(boxAround(centre, {45, 45, 45}), [&](Vec p, Tissue current) {
        if (!isSoftOrgan(current)) return current;
        const double d = ellipsoidDistance(frame.local(p), radii);
        return d < -2 ? Tissue::Fluid : d < 0 ? Tissue::BowelWall : current;
    });
}

// Branching vessels grown inside the liver: each segment continues with a slightly turned
// main branch and sprouts a thinner side branch; a segment whose end would leave the liver
// is re-aimed, then dropped.
class VesselTree {
public:
    VesselTree(const LiverShape& liver, Random& random) : liver_(liver), random_(random) {}

    void grow(Vec start, Vec direction, double segmentLength, double radius, int generations) {
        if (generations == 0 || radius < 1.1) return;
        Vec end{};
        bool inside = false;
        for (int attempt = 0; attempt < 6 && !inside; ++attempt) {
            const Vec turned = normalized(direction + random_.jitter(0.12 + 0.1 * attempt));
            end = start + turned * segmentLength;
            inside = liver_.distance(end) < -(radius + 1.5);
        }
        if (!inside) return;
        segments_.push_back({start, end, radius, radius * 0.92});
        const Vec along = normalized(end - start);
        // One draw per statement: the order of evaluation of function arguments is unspecified.
        const Vec mainTurn = sideways(along);
        const double mainLength = segmentLength * random_.uniform(0.75, 0.92);
        grow(end, along + mainTurn * 0.35, mainLength, radius * 0.86, generations - 1);
        const Vec sideTurn = sideways(along);
        const double sideAngle = random_.uniform(0.8, 1.4);
        const double sideLength = segmentLength * random_.uniform(0.55, 0.8);
        const double sideRadius = radius * random_.uniform(0.5, 0.68);
        grow(end, along + sideTurn * sideAngle, sideLength, sideRadius, generations - 1);
    }

    const std::vector<Tube>& segments() const { return segments_; }

private:
    Vec sideways(Vec along) {
        const Vec r = random_.direction();
        return normalized(r - along * dot(r, along));
    }

    const LiverShape& liver_;
    Random& random_;
    std::vector<Tube> segments_;
};

void paintVesselsInLiver(TissueGrid& grid, const std::vector<Tube>& segments, Tissue vessel) {
    paintTubes(grid, segments, [vessel](Tissue t) { return isLiverTissue(t) ? vessel : t; });
}

struct GreatVessels {
    Vec ivcAt(double z) const { return {-24, ivcY, z}; }
    Vec aortaAt(double z, const Trunk& trunk) const;
    double ivcY = 0;
};

Vec GreatVessels::aortaAt(double z, const Trunk& trunk) const {
    const double front = trunk.spineY - 16;
    const double t = smoothstep(clamp01((z - trunk.centralTendon + 30) / 50));  // abdomen -> thorax
    return {8 + 12 * t, front - 14 + 22 * t, z};
}

GreatVessels greatVessels(const Trunk& trunk) { return {trunk.spineY - 30}; }

void paintLiverVessels(TissueGrid& grid, const LiverShape& liver, const Trunk& trunk, Vec confluence,
                       std::uint64_t seed) {
    Random portalRandom(seed, Stream::PortalVeins);
    const Vec hilum = liver.toBody({-36, 2, 18});
    const Tube mainPortalVein{confluence, hilum, 7, 6.5};
    paintTubes(grid, {mainPortalVein}, [](Tissue t) {
        return isLiverTissue(t) ? Tissue::PortalVeinInLiver : overAbdominalContent(t, Tissue::PortalVein);
    });
    VesselTree portal(liver, portalRandom);
    portal.grow(hilum, normalized(liver.toBody({-90, 30, 35}) - hilum), 28, 5.5, 8);   // right posterior
    portal.grow(hilum, normalized(liver.toBody({-85, -30, 25}) - hilum), 28, 5.2, 8);  // right anterior
    portal.grow(hilum, normalized(liver.toBody({-20, -35, 45}) - hilum), 24, 4.5, 7);  // segment IV
    portal.grow(hilum, normalized(liver.toBody({15, -40, 60}) - hilum), 30, 4.8, 8);   // left lobe
    paintVesselsInLiver(grid, portal.segments(), Tissue::PortalVeinInLiver);

    Random hepaticRandom(seed, Stream::HepaticVeins);
    const double confluenceZ = diaphragmHeight(trunk, -24, greatVessels(trunk).ivcY) - 14;
    const Vec root = greatVessels(trunk).ivcAt(confluenceZ);
    VesselTree hepatic(liver, hepaticRandom);
    hepatic.grow(root, normalized(liver.toBody({-115, 5, 45}) - root), 32, 6.5, 8);  // right
    hepatic.grow(root, normalized(liver.toBody({-55, -45, 15}) - root), 32, 6, 8);   // middle
    hepatic.grow(root, normalized(liver.toBody({20, -42, 60}) - root), 28, 5.5, 7);  // left
    paintVesselsInLiver(grid, hepatic.segments(), Tissue::HepaticVeinInLiver);
}

// Aorta (to the iliac bifurcation) and inferior vena cava (which takes its bite of the
// liver's bare area, as in the LiTS masks).
void paintGreatVessels(TissueGrid& grid, const Trunk& trunk) {
    const GreatVessels vessels = greatVessels(trunk);
    constexpr double kBifurcation = -165;
    grid.paint({{-70, trunk.spineY - 70, -kEverywhere}, {50, trunk.spineY + 10, kEverywhere}}, [&](Vec p, Tissue current) {
        if (!isSoftOrgan(current) && current != Tissue::Lung && current != Tissue::Muscle) return current;
        const Vec aorta = vessels.aortaAt(p.z, trunk);
        if (p.z > kBifurcation) {
            if (square(p.x - aorta.x) + square(p.y - aorta.y) < square(11)) return Tissue::Artery;
        } else {
            const double spread = 6 + 0.35 * (kBifurcation - p.z);
            for (double side : {-1.0, 1.0}) {
                if (square(p.x - aorta.x - side * spread) + square(p.y - aorta.y) < square(7.5)) return Tissue::Artery;
            }
        }
        if (p.z > diaphragmHeight(trunk, -24, vessels.ivcY) + 10) return current;  // enters the heart
        const Vec ivc = vessels.ivcAt(p.z);
        if (square((p.x - ivc.x) / 13) + square((p.y - ivc.y) / 10) < 1) return Tissue::Vein;
        return current;
    });
}

// ---------------------------------------------------------------------------------------
// Kidneys, spleen, back muscles, spine.

void paintKidney(TissueGrid& grid, const Trunk& trunk, Random& random, double side) {
    const Vec centre = Vec{78 * side, trunk.spineY - 2, side < 0 ? -52.0 : -38.0} + random.jitter(4);
    const Vec hilumDirection{-side, -0.65, 0};
    const Frame frame = frameOf(centre, Vec{-0.22 * side, 0.25, 1}, hilumDirection);
    const Vec shape{27, 19, random.uniform(50, 58)};
    const Vec radii = shape * random.uniform(0.92, 1.08);
    grid.paint(boxAround(centre, {65, 65, 65}), [&](Vec p, Tissue current) {
        if (!isSoftOrgan(current)) return current;
        const Vec l = frame.local(p);
        const double d = ellipsoidDistance(l, radii);
        if (d >= 0) return current;
        if (insideEllipsoid(l - Vec{22, 0, -4}, {8, 4.5, 11})) return Tissue::Fluid;  // renal pelvis
        if (insideEllipsoid(l - Vec{20, 0, 0}, {12, 7, radii.z * 0.42})) return Tissue::RenalSinus;
        return d > -6.5 ? Tissue::KidneyCortex : Tissue::KidneyMedulla;
    });
    // Renal vein to the vena cava; the left one crosses in front of the aorta.
    const Vec hilum = frame.toBody({radii.x + 4, 0, 0});
    const GreatVessels vessels = greatVessels(trunk);
    std::vector<std::pair<Vec, double>> path{{hilum, 5}};
    if (side > 0) path.push_back({vessels.aortaAt(hilum.z, trunk) + Vec{0, -15, 0}, 5});
    path.push_back({vessels.ivcAt(hilum.z), 6});
    paintTubes(grid, tubeChain(path), [](Tissue t) { return overAbdominalContent(t, Tissue::Vein); });
}

void paintKidneys(TissueGrid& grid, const Trunk& trunk, std::uint64_t seed) {
    Random random(seed, Stream::Kidneys);
    paintKidney(grid, trunk, random, -1);
    paintKidney(grid, trunk, random, +1);
}

// A crescent along the left posterolateral wall, under the left hemidiaphragm.
void paintSpleen(TissueGrid& grid, const Trunk& trunk, std::uint64_t seed) {
    Random random(seed, Stream::Spleen);
    const double size = random.uniform(0.8, 1.2);
    const Vec centre = Vec{86, trunk.spineY + 4, 40} + random.jitter(4);
    const Vec outward = normalized({0.74, 0.67, 0});
    const Frame frame = frameOf(centre, Vec{0.35, -0.75, -0.55}, outward);
    const Vec radii = Vec{22, 42, 58} * size;
    const Vec hollowCentre = centre - outward * (48 * size);
    const double hollowRadius = 44 * size;
    grid.paint(boxAround(centre, Vec{70, 70, 70} * size), [&](Vec p, Tissue current) {
        if (!isSoftOrgan(current)) return current;
        if (!insideEllipsoid(frame.local(p), radii)) return current;
        return dot(p - hollowCentre, p - hollowCentre) < square(hollowRadius) ? current : Tissue::Spleen;
    });
}

void paintBackMuscles(TissueGrid& grid, const Trunk& trunk) {
    const double spine = trunk.spineY;
    grid.paint({{-110, spine - 45, -kEverywhere}, {110, spine + 75, kEverywhere}}, [&](Vec p, Tissue current) {
        if (current == Tissue::Skin || current == Tissue::SubcutaneousFat || current == Tissue::Outside) return current;
        const double ax = std::abs(p.x);
        if (square((ax - 30) / 22) + square((p.y - spine - 42) / 21) < 1) return Tissue::Muscle;  // erector spinae
        if (p.z < 0 && square((ax - 54) / 12) + square((p.y - spine - 24) / 9) < 1) return Tissue::Muscle;  // quadratus
        const double psoas = std::min(22.0, 0.14 * (-10 - p.z));
        if (psoas > 2 && square((ax - 22 - 0.55 * psoas) / psoas) + square((p.y - spine + 4 - 0.3 * psoas) / (0.85 * psoas)) < 1) {
            return Tissue::Muscle;
        }
        return current;
    });
}

// Vertebrae every 36 mm: body (cancellous core, cortical rim and end plates), discs, the
// canal, pedicles, laminae, spinous and transverse processes.
std::optional<Tissue> vertebraTissue(const Trunk& trunk, Vec p, double phase) {
    constexpr double kLevel = 36, kDiscHalf = 4;
    const double grow = 1 + 0.0012 * std::max(0.0, -p.z);  // lumbar vertebrae are larger
    const Vec body{0, trunk.spineY, 0};
    const double rx = 21 * grow, ry = 16 * grow;
    const double inLevel = (p.z - phase) / kLevel - std::floor((p.z - phase) / kLevel);  // 0..1
    const double zInLevel = inLevel * kLevel;
    const double bodyDistance = ellipsoidDistance({p.x - body.x, p.y - body.y, 0}, {rx, ry, 1});
    if (bodyDistance < 0) {
        if (zInLevel < kDiscHalf || zInLevel > kLevel - kDiscHalf) return Tissue::Disc;
        const double toEndPlate = std::min(zInLevel - kDiscHalf, kLevel - kDiscHalf - zInLevel);
        return bodyDistance > -1.8 || toEndPlate < 1.5 ? Tissue::CorticalBone : Tissue::CancellousBone;
    }
    const Vec canal{0, trunk.spineY + ry + 10, 0};
    const double cx = p.x - canal.x, cy = p.y - canal.y;
    if (square(cx / 11) + square(cy / 8.5) < 1) return Tissue::SpinalCanal;
    const bool arch = zInLevel > kDiscHalf + 3 && zInLevel < kLevel - kDiscHalf - 5;
    if (!arch) return std::nullopt;
    const double ax = std::abs(cx);
    if (cy < 0 && cy > -12 && ax > 8 && ax < 15) return Tissue::PosteriorElement;                        // pedicles
    if (cy >= -2 && square(cx / 18) + square(cy / 16) < 1) return Tissue::PosteriorElement;             // laminae
    if (std::abs(p.x) < 3.5 && cy > 10 && cy < 32 - 0.3 * std::abs(zInLevel - kLevel / 2)) return Tissue::PosteriorElement;
    if (std::abs(zInLevel - kLevel / 2) < 5 && ax < 33 && std::abs(cy + 3 + 0.05 * ax) < 3.5) return Tissue::PosteriorElement;
    return std::nullopt;
}

void paintSpine(TissueGrid& grid, const Trunk& trunk, std::uint64_t seed) {
    Random random(seed, Stream::Spine);
    const double phase = random.uniform(0, 36);
    grid.paint({{-50, trunk.spineY - 25, -kEverywhere}, {50, trunk.spineY + 70, kEverywhere}},
               [&](Vec p, Tissue current) {
                   if (current == Tissue::Outside || current == Tissue::Skin) return current;
                   return vertebraTissue(trunk, p, phase).value_or(current);
               });
}

// ---------------------------------------------------------------------------------------
// The liver mask: the largest 6-connected piece of liver tissue; stray pieces (cut off by
// the vena cava or the gallbladder) become fat so image and mask agree.

LabelMap liverMask(TissueGrid& grid, const Geometry& geometry) {
    std::vector<std::uint8_t> voxels(grid.tissue().size());
    for (std::size_t v = 0; v < voxels.size(); ++v) voxels[v] = isLiverTissue(grid.tissue()[v]) ? 1 : 0;
    LabelMap mask(geometry, std::move(voxels));
    keepLargestComponent(mask);
    for (std::size_t v = 0; v < mask.voxelCount(); ++v) {
        if (mask.voxels()[v] == 0 && isLiverTissue(grid.tissue()[v])) grid.tissue()[v] = Tissue::VisceralFat;
    }
    return mask;
}

// ---------------------------------------------------------------------------------------
// From tissue labels to Hounsfield units, one slice at a time.

constexpr double kNoiseBeforeBlur = 32;  // HU; the [1 2 1] x [1 2 1] / 16 blur leaves ~12 HU

class Renderer {
public:
    Renderer(const TissueGrid& grid, std::uint64_t seed) : grid_(grid), noiseKey_(hashOf(seed, std::uint64_t(Stream::VoxelNoise))) {
        for (std::size_t t = 0; t < looks_.size(); ++t) {
            looks_[t] = lookOf(Tissue(t));
            textureKeys_[t] = hashOf(hashOf(seed, std::uint64_t(Stream::Texture)), t);
        }
        const std::size_t sliceVoxels = grid.size()[0] * grid.size()[1];
        values_.resize(sliceVoxels);
        scratch_.resize(sliceVoxels);
    }

    void renderSlice(std::size_t z, std::int16_t* out) {
        const std::size_t nx = grid_.size()[0], ny = grid_.size()[1];
        const Tissue* labels = &grid_.tissue()[grid_.offset(0, 0, z)];
        for (std::size_t y = 0; y < ny; ++y) {
            for (std::size_t x = 0; x < nx; ++x) {
                const std::size_t i = x + nx * y;
                values_[i] = float(valueAt(labels[i], x, y, z, grid_.offset(x, y, z)));
            }
        }
        blurInPlane(nx, ny);
        for (std::size_t i = 0; i < nx * ny; ++i) {
            const double hu = std::floor(double(values_[i]) + 0.5);
            out[i] = std::int16_t(clampTo(hu, -1024, 3071));
        }
    }

private:
    double valueAt(Tissue tissue, std::size_t x, std::size_t y, std::size_t z, std::size_t index) const {
        if (tissue == Tissue::Outside) return -1000;
        const auto t = std::size_t(tissue);
        const Look& look = looks_[t];
        double hu = look.hu + kNoiseBeforeBlur * voxelNoise(noiseKey_, index);
        if (look.textureAmplitude > 0) {
            hu += look.textureAmplitude * valueNoise(textureKeys_[t], grid_.position(x, y, z), look.textureCell);
        }
        return hu;
    }

    // [1 2 1] / 4 along x then y, edges repeated; row by row for the cache.
    void blurInPlane(std::size_t nx, std::size_t ny) {
        for (std::size_t y = 0; y < ny; ++y) {
            const float* in = &values_[y * nx];
            float* out = &scratch_[y * nx];
            for (std::size_t x = 0; x < nx; ++x) {
                out[x] = 0.25f * in[x > 0 ? x - 1 : x] + 0.5f * in[x] + 0.25f * in[x + 1 < nx ? x + 1 : x];
            }
        }
        for (std::size_t y = 0; y < ny; ++y) {
            const float* above = &scratch_[(y > 0 ? y - 1 : y) * nx];
            const float* row = &scratch_[y * nx];
            const float* below = &scratch_[(y + 1 < ny ? y + 1 : y) * nx];
            float* out = &values_[y * nx];
            for (std::size_t x = 0; x < nx; ++x) out[x] = 0.25f * above[x] + 0.5f * row[x] + 0.25f * below[x];
        }
    }

    const TissueGrid& grid_;
    std::uint64_t noiseKey_;
    std::array<Look, std::size_t(Tissue::Count)> looks_{};
    std::array<std::uint64_t, std::size_t(Tissue::Count)> textureKeys_{};
    std::vector<float> values_, scratch_;
};

CtVolume renderCt(const TissueGrid& grid, const Geometry& geometry, std::uint64_t seed) {
    CtVolume ct(geometry);
    Renderer renderer(grid, seed);
    for (std::size_t z = 0; z < geometry.size[2]; ++z) renderer.renderSlice(z, ct.slice(z));
    return ct;
}

// ---------------------------------------------------------------------------------------

Geometry phantomGeometry(const PhantomOptions& options) {
    Geometry geometry;
    geometry.size = options.size;
    geometry.spacing = options.spacing;
    for (int axis = 0; axis < 3; ++axis) {
        if (options.size[std::size_t(axis)] == 0 || !(options.spacing[axis] > 0)) {
            throw std::invalid_argument("phantom: size and spacing must be positive");
        }
        geometry.origin[axis] = -0.5 * double(options.size[std::size_t(axis)] - 1) * options.spacing[axis];
    }
    return geometry;
}

// Millimetres per anatomy-frame millimetre: the reference trunk (about 330 x 250 mm) fits a
// 400 x 300 mm field of view.
double anatomyScale(const Geometry& geometry) {
    const double width = double(geometry.size[0]) * geometry.spacing[0];
    const double depth = double(geometry.size[1]) * geometry.spacing[1];
    return std::min(width / 400, depth / 300);
}

}  // namespace

PhantomCase makeAbdominalPhantom(const PhantomOptions& options) {
    const Geometry geometry = phantomGeometry(options);
    const std::uint64_t seed = options.seed;
    TissueGrid grid(geometry, anatomyScale(geometry));

    const Trunk trunk = drawTrunk(seed);
    paintTrunk(grid, trunk);
    paintBackMuscles(grid, trunk);
    paintColon(grid, seed);
    paintSmallBowel(grid, trunk, seed);
    paintMesentery(grid, seed);
    paintStomachAndDuodenum(grid, seed);
    const Vec confluence = paintPancreasAndMesenteric(grid, trunk);

    const LiverShape liver(seed);
    paintLiver(grid, liver);
    paintGallbladder(grid, liver, seed);
    paintLiverVessels(grid, liver, trunk, confluence, seed);
    paintGreatVessels(grid, trunk);

    paintSpleen(grid, trunk, seed);
    paintKidneys(grid, trunk, seed);
    paintSpine(grid, trunk, seed);

    LabelMap mask = liverMask(grid, geometry);
    return {renderCt(grid, geometry, seed), std::move(mask)};
}

}  // namespace liverseg::core

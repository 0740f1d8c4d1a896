#include "core/LabelOps.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace liverseg::core {
namespace {

// Labels each 6-connected foreground component; returns per-voxel component ids
// (0 = background) and the size of each component (index 0 unused).
std::vector<std::uint32_t> labelComponents(const LabelMap& labels, std::vector<std::size_t>& sizes) {
    const auto [nx, ny, nz] = labels.size();
    const std::size_t sliceSize = nx * ny;
    std::vector<std::uint32_t> component(labels.voxelCount(), 0);
    std::vector<std::size_t> stack;
    sizes.assign(1, 0);
    for (std::size_t start = 0; start < component.size(); ++start) {
        if (labels.voxels()[start] == 0 || component[start] != 0) continue;
        const auto id = std::uint32_t(sizes.size());
        std::size_t count = 0;
        stack.push_back(start);
        component[start] = id;
        while (!stack.empty()) {
            const std::size_t at = stack.back();
            stack.pop_back();
            ++count;
            const std::size_t x = at % nx, y = (at / nx) % ny, z = at / sliceSize;
            const auto visit = [&](std::size_t neighbour) {
                if (labels.voxels()[neighbour] != 0 && component[neighbour] == 0) {
                    component[neighbour] = id;
                    stack.push_back(neighbour);
                }
            };
            if (x > 0) visit(at - 1);
            if (x + 1 < nx) visit(at + 1);
            if (y > 0) visit(at - nx);
            if (y + 1 < ny) visit(at + nx);
            if (z > 0) visit(at - sliceSize);
            if (z + 1 < nz) visit(at + sliceSize);
        }
        sizes.push_back(count);
    }
    return component;
}

// Marks background pixels of one slice that the border reaches through 4-connected background.
std::vector<bool> backgroundReachableFromBorder(const std::uint8_t* slice, std::size_t nx, std::size_t ny) {
    std::vector<bool> reached(nx * ny, false);
    std::vector<std::size_t> stack;
    const auto seed = [&](std::size_t at) {
        if (slice[at] == 0 && !reached[at]) {
            reached[at] = true;
            stack.push_back(at);
        }
    };
    for (std::size_t x = 0; x < nx; ++x) {
        seed(x);
        seed((ny - 1) * nx + x);
    }
    for (std::size_t y = 0; y < ny; ++y) {
        seed(y * nx);
        seed(y * nx + nx - 1);
    }
    while (!stack.empty()) {
        const std::size_t at = stack.back();
        stack.pop_back();
        const std::size_t x = at % nx, y = at / nx;
        if (x > 0) seed(at - 1);
        if (x + 1 < nx) seed(at + 1);
        if (y > 0) seed(at - nx);
        if (y + 1 < ny) seed(at + nx);
    }
    return reached;
}

}  // namespace

std::size_t keepLargestComponent(LabelMap& labels) {
    std::vector<std::size_t> sizes;
    const std::vector<std::uint32_t> component = labelComponents(labels, sizes);
    if (sizes.size() <= 2) return 0;  // zero or one component
    const auto largest = std::uint32_t(std::max_element(sizes.begin() + 1, sizes.end()) - sizes.begin());
    std::size_t removed = 0;
    for (std::size_t i = 0; i < component.size(); ++i) {
        if (component[i] != 0 && component[i] != largest) {
            labels.voxels()[i] = 0;
            ++removed;
        }
    }
    return removed;
}

std::size_t fillHolesPerSlice(LabelMap& labels, std::uint8_t fillValue) {
    const auto [nx, ny, nz] = labels.size();
    std::size_t filled = 0;
    for (std::size_t z = 0; z < nz; ++z) {
        std::uint8_t* slice = labels.slice(z);
        const std::vector<bool> outside = backgroundReachableFromBorder(slice, nx, ny);
        for (std::size_t i = 0; i < nx * ny; ++i) {
            if (slice[i] == 0 && !outside[i]) {
                slice[i] = fillValue;
                ++filled;
            }
        }
    }
    return filled;
}

double diceCoefficient(const LabelMap& a, const LabelMap& b) {
    if (a.size() != b.size()) throw std::invalid_argument("diceCoefficient: masks have different sizes");
    std::size_t sizeA = 0, sizeB = 0, both = 0;
    for (std::size_t i = 0; i < a.voxelCount(); ++i) {
        const bool inA = a.voxels()[i] != 0, inB = b.voxels()[i] != 0;
        sizeA += inA;
        sizeB += inB;
        both += inA && inB;
    }
    return sizeA + sizeB == 0 ? 1.0 : 2.0 * double(both) / double(sizeA + sizeB);
}

}  // namespace liverseg::core

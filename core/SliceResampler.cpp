#include "core/SliceResampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace liverseg::core {
namespace {

struct Tap {
    std::size_t source;
    float weight;
};

// For each output index along one axis, the source pixels it reads and their weights.
std::vector<std::vector<Tap>> axisTaps(std::size_t sourceLength, std::size_t targetLength) {
    const double scale = double(sourceLength) / double(targetLength);
    std::vector<std::vector<Tap>> taps(targetLength);
    for (std::size_t i = 0; i < targetLength; ++i) {
        if (scale > 1.0) {
            const double begin = double(i) * scale, end = double(i + 1) * scale;
            for (auto j = std::size_t(begin); j < sourceLength && double(j) < end; ++j) {
                const double overlap = std::min(end, double(j + 1)) - std::max(begin, double(j));
                if (overlap > 1e-9) taps[i].push_back({j, float(overlap / scale)});
            }
        } else {
            const double centre = std::clamp((double(i) + 0.5) * scale - 0.5, 0.0, double(sourceLength - 1));
            const auto left = std::size_t(centre);
            const std::size_t right = std::min(left + 1, sourceLength - 1);
            const double fraction = centre - double(left);
            taps[i].push_back({left, float(1.0 - fraction)});
            if (right != left && fraction > 0) taps[i].push_back({right, float(fraction)});
        }
    }
    return taps;
}

}  // namespace

Plane resamplePlane(const Plane& source, std::size_t width, std::size_t height) {
    if (source.width == 0 || source.height == 0 || width == 0 || height == 0 ||
        source.pixels.size() != source.width * source.height) {
        throw std::invalid_argument("resamplePlane: empty or inconsistent plane");
    }
    if (width == source.width && height == source.height) return source;
    const auto xTaps = axisTaps(source.width, width);
    const auto yTaps = axisTaps(source.height, height);

    std::vector<float> rows(width * source.height);  // x resampled first
    for (std::size_t y = 0; y < source.height; ++y) {
        const float* in = source.pixels.data() + y * source.width;
        float* out = rows.data() + y * width;
        for (std::size_t x = 0; x < width; ++x) {
            float sum = 0;
            for (const Tap& tap : xTaps[x]) sum += tap.weight * in[tap.source];
            out[x] = sum;
        }
    }
    Plane target{width, height, std::vector<float>(width * height, 0.0f)};
    for (std::size_t y = 0; y < height; ++y) {
        float* out = target.pixels.data() + y * width;
        for (const Tap& tap : yTaps[y]) {
            const float* in = rows.data() + tap.source * width;
            for (std::size_t x = 0; x < width; ++x) out[x] += tap.weight * in[x];
        }
    }
    return target;
}

std::size_t resampledLength(std::size_t extent, double spacing, double targetSpacing) {
    if (!(spacing > 0) || !(targetSpacing > 0)) throw std::invalid_argument("resampledLength: spacing must be positive");
    return std::max<std::size_t>(1, std::size_t(std::lround(double(extent) * spacing / targetSpacing)));
}

}  // namespace liverseg::core

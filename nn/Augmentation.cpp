#include "nn/Augmentation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/vision.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

namespace liverseg::nn {
namespace {

namespace F = torch::nn::functional;

// A uniform double in [0, 1) from 53 random bits: the same on every platform, unlike
// std::uniform_real_distribution.
double unitDraw(std::mt19937_64& random) { return double(random() >> 11) * 0x1.0p-53; }

double uniform(std::mt19937_64& random, double low, double high) { return low + (high - low) * unitDraw(random); }

bool chance(std::mt19937_64& random, double probability) { return unitDraw(random) < probability; }

std::uint64_t splitMix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

}  // namespace

std::uint64_t mixSeed(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
    return splitMix(splitMix(splitMix(splitMix(a) ^ b) ^ c) ^ d);
}

void augmentBatch(torch::Tensor& images, torch::Tensor& masks, std::uint64_t seed, const AugmentationOptions& options) {
    if (!options.enabled) return;
    TORCH_CHECK(images.dim() == 4 && masks.dim() == 4 && images.size(0) == masks.size(0) &&
                    images.size(2) == masks.size(2) && images.size(3) == masks.size(3),
                "augmentBatch: images (N, C, H, W) and masks (N, 1, H, W) must match");
    torch::NoGradGuard noGrad;
    std::mt19937_64 random(seed);
    const std::int64_t batch = images.size(0);

    // One 2x3 affine matrix per sample in grid_sample's normalised coordinates: it maps
    // output positions to the input positions they read.
    torch::Tensor theta = torch::zeros({batch, 2, 3});
    auto matrix = theta.accessor<float, 3>();
    bool anySpatial = false;
    for (std::int64_t n = 0; n < batch; ++n) {
        const double flipX = chance(random, options.flipProbability) ? -1.0 : 1.0;
        const double flipY = chance(random, options.flipProbability) ? -1.0 : 1.0;
        double angle = 0, scale = 1;
        if (chance(random, options.transformProbability)) {
            angle = uniform(random, -options.maxRotationDegrees, options.maxRotationDegrees) * M_PI / 180.0;
            scale = uniform(random, options.minScale, options.maxScale);
        }
        // Reading from position R(angle) * p / scale shows the anatomy zoomed by `scale`.
        const double c = std::cos(angle) / scale, s = std::sin(angle) / scale;
        matrix[n][0][0] = float(c * flipX);
        matrix[n][0][1] = float(-s * flipY);
        matrix[n][1][0] = float(s * flipX);
        matrix[n][1][1] = float(c * flipY);
        anySpatial = anySpatial || flipX < 0 || flipY < 0 || angle != 0 || scale != 1;
    }
    if (anySpatial) {
        const torch::Tensor grid = F::affine_grid(theta.to(images.dtype()), images.sizes(), /*align_corners=*/false);
        const auto sampling = [&grid](const torch::Tensor& input) {
            return F::grid_sample(input, grid,
                                  F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
        };
        images = sampling(images);
        masks = sampling(masks).ge(0.5).to(masks.dtype());
    }

    // Intensity: per sample contrast about the sample's mean, brightness, then noise.
    torch::Tensor gain = torch::ones({batch, 1, 1, 1});
    torch::Tensor offset = torch::zeros({batch, 1, 1, 1});
    torch::Tensor sigma = torch::zeros({batch, 1, 1, 1});
    bool anyIntensity = false;
    for (std::int64_t n = 0; n < batch; ++n) {
        if (!chance(random, options.intensityProbability)) continue;
        anyIntensity = true;
        gain[n] = 1.0 + uniform(random, -options.contrastJitter, options.contrastJitter);
        offset[n] = uniform(random, -options.brightnessJitter, options.brightnessJitter);
        sigma[n] = uniform(random, 0.0, options.maxNoiseSigma);
    }
    if (anyIntensity) {
        const torch::Tensor mean = images.mean({1, 2, 3}, /*keepdim=*/true);
        at::Generator noiseGenerator = at::detail::createCPUGenerator(random());
        const torch::Tensor noise = at::randn(images.sizes(), noiseGenerator, images.options());
        images = ((images - mean) * gain + mean + offset + noise * sigma).clamp(0.0, 1.0);
    }
}

}  // namespace liverseg::nn

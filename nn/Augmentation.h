#pragma once
// On-the-fly augmentation of training batches: flips, a small rotation and scale (one affine
// transform per sample, applied to the slice triple and its mask alike), then contrast,
// brightness and noise jitter on the image. Every draw comes from the seed given per call,
// so a batch's augmentation is a function of (seed, step): resuming repeats it exactly.
#include <torch/types.h>

#include <cstdint>

namespace liverseg::nn {

struct AugmentationOptions {
    bool enabled = false;
    double flipProbability = 0.5;       // per axis: left-right, then up-down
    double transformProbability = 0.5;  // chance of a rotation + scale (else identity)
    double maxRotationDegrees = 15.0;
    double minScale = 0.85;             // zoom factor range (> 1 enlarges the anatomy)
    double maxScale = 1.15;
    double intensityProbability = 0.5;  // chance of contrast/brightness/noise jitter
    double contrastJitter = 0.15;       // values scaled about their mean by 1 +- this
    double brightnessJitter = 0.05;     // plus +- this (inputs are in [0, 1])
    double maxNoiseSigma = 0.02;        // Gaussian noise sigma drawn from [0, this]
};

// Augments a batch in place. images: (N, C, H, W) floats in [0, 1]; masks: (N, 1, H, W)
// 0/1 floats on the same grid. Areas moved in from outside are 0 in both. Does nothing when
// options.enabled is false.
void augmentBatch(torch::Tensor& images, torch::Tensor& masks, std::uint64_t seed, const AugmentationOptions& options);

// A 64-bit mix of values, for seeds derived from (seed, epoch, step, rank).
std::uint64_t mixSeed(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0, std::uint64_t d = 0);

}  // namespace liverseg::nn

#pragma once
// From a CT volume to a liver mask on exactly the CT's grid: HU window, in-plane resampling
// to the model's pixel spacing, slice triples, batched forward, sigmoid, back to the CT
// grid, threshold, optional post-processing. Torch stays inside InferenceEngine.cpp.
#include "core/Image.h"
#include "nn/ModelConfig.h"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace at {
class Tensor;
}

namespace liverseg::nn {

class SegmentationNetworkImpl;

enum class DeviceChoice { Auto, Cpu, Cuda };
enum class Precision { Fp32, Bf16 };
DeviceChoice parseDeviceChoice(const std::string& text);  // "auto" | "cpu" | "cuda"
Precision parsePrecision(const std::string& text);        // "fp32" | "bf16"
std::string toString(Precision precision);

struct InferenceOptions {
    DeviceChoice device = DeviceChoice::Auto;
    Precision precision = Precision::Fp32;
    int threads = 0;            // LibTorch intra-op threads; 0 = every core
    int batchSize = 4;          // slices per forward pass
    double threshold = 0.5;     // on the probability
    bool postprocess = true;    // largest 3D component + slice hole filling
    std::optional<std::size_t> firstSlice;  // computed first, then outward (the visible slice)
};

// Per-slice progress and cancellation, checked per batch. `cancelled` returning true makes
// segment() throw core::Cancelled; nothing partial is returned.
struct InferenceProgress {
    std::function<void(std::size_t slicesDone, std::size_t sliceCount)> onProgress;
    std::function<bool()> cancelled;
};

struct InferenceTimings {
    double preprocessSeconds = 0;
    double forwardSeconds = 0;
    double resampleBackSeconds = 0;
    double postprocessSeconds = 0;
    double totalSeconds = 0;
};

struct Segmentation {
    core::LabelMap mask;           // 0/1 on the CT grid
    core::LabelMap probabilities;  // sigmoid x 255, rounded, on the CT grid
    InferenceTimings timings;
    std::string device;            // "cpu" or "cuda:0"
    Precision precision = Precision::Fp32;
};

class InferenceEngine {
public:
    // Takes `network` over and prepares it for inference (eval mode, BatchNorm folded into
    // the convolutions, device, precision); don't train or save it afterwards. Throws core::InputError when the choice cannot be honoured
    // (CUDA asked for but absent, bf16 unsupported on this CPU).
    InferenceEngine(std::shared_ptr<SegmentationNetworkImpl> network, Preprocessing preprocessing,
                    InferenceOptions options);
    ~InferenceEngine();
    InferenceEngine(const InferenceEngine&) = delete;
    InferenceEngine& operator=(const InferenceEngine&) = delete;

    Segmentation segment(const core::CtVolume& ct, const InferenceProgress& progress = {}) const;

    // The prepared network's raw logits for an (N, channels, H, W) float input, on the
    // engine's device and precision; returned as float32 on the CPU. For parity checks
    // and benchmarks.
    at::Tensor logits(const at::Tensor& input) const;

    const Preprocessing& preprocessing() const;
    std::string deviceName() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

// Whether this CPU computes bf16 natively (avx512_bf16 or amx_bf16 in /proc/cpuinfo).
bool cpuHasNativeBf16();

// The order in which slices are computed: `first`, then alternately one further below and
// above, so the slice a viewer shows is ready first and its neighbourhood next.
std::vector<std::size_t> sliceOrder(std::size_t sliceCount, std::optional<std::size_t> first);

}  // namespace liverseg::nn

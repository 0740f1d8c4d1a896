#include "nn/InferenceEngine.h"

#include "core/Errors.h"
#include "core/LabelOps.h"
#include "core/SliceResampler.h"
#include "nn/Networks.h"
#include "nn/Threads.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

namespace liverseg::nn {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

core::AxialView requireAxialView(const core::Geometry& geometry) {
    const std::optional<core::AxialView> view = core::axialView(geometry.direction);
    if (!view) {
        throw core::InputError("the CT is stored as " + core::orientationCode(geometry.direction) +
                               " slices, not axial: the networks take axial slices (reorient it, e.g. to LPS or RAS)");
    }
    return *view;
}

// Input side the network needs to produce at least `needed` output pixels, and where the
// image sits in it so output pixel i corresponds to image pixel i.
struct PaddedSide {
    std::int64_t input = 0;
    std::int64_t shift = 0;
};

PaddedSide paddedSide(const ModelConfig& config, std::int64_t needed) {
    const std::int64_t multiple = std::max<std::int64_t>(inputSideMultiple(config), 16);
    std::int64_t input = std::max(minimumInputSide(config), needed);
    input = (input + multiple - 1) / multiple * multiple;
    while (true) {
        const SpatialSize out = outputSize(config, {input, input});
        if (out.height >= needed) return {input, (input - out.height) / 2};
        input += multiple;
    }
}

core::Plane windowedPlane(const core::CtVolume& ct, std::size_t z, const Preprocessing& pre, const core::AxialView& frame) {
    const auto [nx, ny, nz] = ct.size();
    const std::int16_t* slice = ct.slice(frame.flipSlices ? nz - 1 - z : z);
    const float low = float(pre.windowLowHu), scale = float(1.0 / (pre.windowHighHu - pre.windowLowHu));
    core::Plane plane{nx, ny, std::vector<float>(nx * ny)};
    for (std::size_t y = 0; y < ny; ++y) {
        const std::size_t sourceRow = frame.flipRows ? ny - 1 - y : y;
        for (std::size_t x = 0; x < nx; ++x) {
            const std::size_t sourceColumn = frame.flipColumns ? nx - 1 - x : x;
            const float unit = (float(slice[sourceRow * nx + sourceColumn]) - low) * scale;
            plane.pixels[y * nx + x] = std::clamp(unit, 0.0f, 1.0f);
        }
    }
    return plane;
}

torch::Device chooseDevice(DeviceChoice choice) {
    const bool cudaPresent = torch::cuda::is_available();
    if (choice == DeviceChoice::Cuda && !cudaPresent) {
        throw core::InputError("--device cuda: this LibTorch build has no CUDA or no GPU is visible; use --device cpu");
    }
    return choice != DeviceChoice::Cpu && cudaPresent ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

// LibTorch 1.13's bf16 ConvTranspose2d fails on the CPU; UpImpl runs these in their
// weights' dtype, so keeping them fp32 makes the rest of the network bf16.
void keepTransposedConvolutionsInFloat32(torch::nn::Module& network) {
    for (const auto& module : network.modules()) {
        if (auto* transposed = dynamic_cast<torch::nn::ConvTranspose2dImpl*>(module.get())) {
            transposed->to(torch::kFloat32);
        }
    }
}

}  // namespace

bool cpuHasNativeBf16() {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("flags", 0) == 0) {
            return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
        }
    }
    return false;
}

DeviceChoice parseDeviceChoice(const std::string& text) {
    if (text == "auto") return DeviceChoice::Auto;
    if (text == "cpu") return DeviceChoice::Cpu;
    if (text == "cuda") return DeviceChoice::Cuda;
    throw core::InputError("unknown device '" + text + "'; use auto, cpu or cuda");
}

Precision parsePrecision(const std::string& text) {
    if (text == "fp32") return Precision::Fp32;
    if (text == "bf16") return Precision::Bf16;
    throw core::InputError("unknown precision '" + text + "'; use fp32 or bf16");
}

std::string toString(Precision precision) { return precision == Precision::Bf16 ? "bf16" : "fp32"; }

std::vector<std::size_t> sliceOrder(std::size_t sliceCount, std::optional<std::size_t> first) {
    std::vector<std::size_t> order;
    order.reserve(sliceCount);
    const std::size_t start = std::min(first.value_or(0), sliceCount == 0 ? 0 : sliceCount - 1);
    for (std::size_t distance = 0; order.size() < sliceCount; ++distance) {
        if (distance == 0) {
            order.push_back(start);
            continue;
        }
        if (start >= distance) order.push_back(start - distance);
        if (start + distance < sliceCount) order.push_back(start + distance);
    }
    return order;
}

struct InferenceEngine::State {
    SegmentationNetwork network;
    Preprocessing preprocessing;
    InferenceOptions options;
    torch::Device device{torch::kCPU};
    torch::ScalarType dtype = torch::kFloat32;
};

InferenceEngine::InferenceEngine(SegmentationNetwork network, Preprocessing preprocessing, InferenceOptions options)
    : state_(std::make_unique<State>()) {
    preprocessing.validate();
    if (options.batchSize < 1) throw core::InputError("batch size must be at least 1");
    if (!(options.threshold > 0 && options.threshold < 1)) throw core::InputError("threshold must be in (0, 1)");
    setIntraOpThreads(options.threads);
    state_->device = chooseDevice(options.device);
    if (options.precision == Precision::Bf16 && state_->device.is_cpu() && !cpuHasNativeBf16()) {
        throw core::InputError("--precision bf16: this CPU has no native bf16 instructions (avx512_bf16 or amx_bf16), "
                               "so bf16 would be slower than fp32; use --precision fp32");
    }
    state_->dtype = options.precision == Precision::Bf16 ? torch::kBFloat16 : torch::kFloat32;
    network->eval();
    foldBatchNormForInference(*network);
    network->to(state_->device, state_->dtype);
    keepTransposedConvolutionsInFloat32(*network);
    state_->network = std::move(network);
    state_->preprocessing = preprocessing;
    state_->options = options;
}

InferenceEngine::~InferenceEngine() = default;

const Preprocessing& InferenceEngine::preprocessing() const { return state_->preprocessing; }

std::string InferenceEngine::deviceName() const { return state_->device.str(); }

at::Tensor InferenceEngine::logits(const at::Tensor& input) const {
    c10::InferenceMode inferenceMode;
    return state_->network->forward(input.to(state_->device, state_->dtype)).to(torch::kCPU, torch::kFloat32);
}

Segmentation InferenceEngine::segment(const core::CtVolume& ct, const InferenceProgress& progress) const {
    const auto started = Clock::now();
    const core::Geometry& geometry = ct.geometry();
    const core::AxialView frame = requireAxialView(geometry);
    const Preprocessing& pre = state_->preprocessing;
    const ModelConfig& config = state_->network->config();
    const auto [nx, ny, nz] = ct.size();
    const std::size_t modelWidth = core::resampledLength(nx, geometry.spacing[0], pre.pixelSpacingMm);
    const std::size_t modelHeight = core::resampledLength(ny, geometry.spacing[1], pre.pixelSpacingMm);
    const PaddedSide columns = paddedSide(config, std::int64_t(modelWidth));
    const PaddedSide rows = paddedSide(config, std::int64_t(modelHeight));

    Segmentation result;
    result.mask = core::LabelMap(geometry, 0);
    result.probabilities = core::LabelMap(geometry, 0);
    result.device = deviceName();
    result.precision = state_->options.precision;

    // Model-resolution planes of recently used slices, with when each was last used: a
    // slice serves as centre and as neighbour, and is prepared once while it is in use.
    std::map<std::size_t, std::pair<core::Plane, std::size_t>> prepared;
    std::size_t useCounter = 0;
    const auto preparedPlane = [&](std::size_t z) -> const core::Plane& {
        auto found = prepared.find(z);
        if (found == prepared.end()) {
            const auto begin = Clock::now();
            core::Plane plane = core::resamplePlane(windowedPlane(ct, z, pre, frame), modelWidth, modelHeight);
            result.timings.preprocessSeconds += secondsSince(begin);
            found = prepared.emplace(z, std::make_pair(std::move(plane), std::size_t(0))).first;
        }
        found->second.second = ++useCounter;
        return found->second.first;
    };
    const auto forgetLeastRecentlyUsed = [&](std::size_t keep) {
        while (prepared.size() > keep) {
            prepared.erase(std::min_element(prepared.begin(), prepared.end(), [](const auto& a, const auto& b) {
                return a.second.second < b.second.second;
            }));
        }
    };

    c10::InferenceMode inferenceMode;
    const std::vector<std::size_t> order = sliceOrder(nz, state_->options.firstSlice);
    const std::size_t batchSize = std::size_t(state_->options.batchSize);
    const int context = pre.sliceContext, half = context / 2;
    std::size_t done = 0;
    for (std::size_t batchStart = 0; batchStart < order.size(); batchStart += batchSize) {
        if (progress.cancelled && progress.cancelled()) throw core::Cancelled();
        const std::size_t count = std::min(batchSize, order.size() - batchStart);
        torch::Tensor input = torch::zeros({std::int64_t(count), context, rows.input, columns.input});
        auto access = input.accessor<float, 4>();
        for (std::size_t b = 0; b < count; ++b) {
            const auto centre = std::int64_t(order[batchStart + b]);
            for (int channel = 0; channel < context; ++channel) {
                const auto z = std::size_t(std::clamp<std::int64_t>(centre - half + channel, 0, std::int64_t(nz) - 1));
                const core::Plane& plane = preparedPlane(z);
                for (std::size_t y = 0; y < modelHeight; ++y) {
                    for (std::size_t x = 0; x < modelWidth; ++x) {
                        access[b][channel][rows.shift + std::int64_t(y)][columns.shift + std::int64_t(x)] =
                            plane.pixels[y * modelWidth + x];
                    }
                }
            }
        }
        const auto forwardBegin = Clock::now();
        torch::Tensor probabilities =
            torch::sigmoid(state_->network->forward(input.to(state_->device, state_->dtype)).to(torch::kFloat32))
                .to(torch::kCPU)
                .contiguous();
        result.timings.forwardSeconds += secondsSince(forwardBegin);

        const auto backBegin = Clock::now();
        for (std::size_t b = 0; b < count; ++b) {
            const std::size_t z = order[batchStart + b];
            core::Plane modelPlane{modelWidth, modelHeight, std::vector<float>(modelWidth * modelHeight)};
            const auto out = probabilities.accessor<float, 4>();
            for (std::size_t y = 0; y < modelHeight; ++y) {
                for (std::size_t x = 0; x < modelWidth; ++x) modelPlane.pixels[y * modelWidth + x] = out[b][0][y][x];
            }
            const core::Plane ctPlane = core::resamplePlane(modelPlane, nx, ny);
            const std::size_t volumeZ = frame.flipSlices ? nz - 1 - z : z;
            std::uint8_t* maskSlice = result.mask.slice(volumeZ);
            std::uint8_t* probabilitySlice = result.probabilities.slice(volumeZ);
            for (std::size_t y = 0; y < ny; ++y) {
                const std::size_t volumeY = frame.flipRows ? ny - 1 - y : y;
                for (std::size_t x = 0; x < nx; ++x) {
                    const std::size_t volumeX = frame.flipColumns ? nx - 1 - x : x;
                    const float p = ctPlane.pixels[y * nx + x];
                    maskSlice[volumeY * nx + volumeX] = p >= state_->options.threshold ? 1 : 0;
                    probabilitySlice[volumeY * nx + volumeX] = std::uint8_t(std::lround(std::clamp(p, 0.0f, 1.0f) * 255));
                }
            }
        }
        result.timings.resampleBackSeconds += secondsSince(backBegin);
        forgetLeastRecentlyUsed(2 * (batchSize + std::size_t(context)));
        done += count;
        if (progress.onProgress) progress.onProgress(done, nz);
    }

    if (state_->options.postprocess) {
        const auto begin = Clock::now();
        core::keepLargestComponent(result.mask);
        core::fillHolesPerSlice(result.mask);
        result.timings.postprocessSeconds = secondsSince(begin);
    }
    result.timings.totalSeconds = secondsSince(started);
    return result;
}

}  // namespace liverseg::nn

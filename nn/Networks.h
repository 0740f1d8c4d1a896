#pragma once
// The seed's UNet and UNet3+ as LibTorch modules. Every child is registered under the name
// the seed's PyTorch code uses, so stateDict() (nn/Checkpoint.h) gives exactly the seed's
// state_dict keys and weights move between Python and here unchanged.
#include "nn/ModelConfig.h"

#include <torch/nn.h>

#include <memory>
#include <vector>

namespace liverseg::nn {

// (3x3 conv without bias, BatchNorm, ReLU) x 2 in `double_conv` (indices 0-5).
class DoubleConvImpl : public torch::nn::Module {
public:
    DoubleConvImpl(int inChannels, int outChannels, int padding);
    torch::Tensor forward(const torch::Tensor& x);
    // Inference only: folds each eval-mode BatchNorm into the conv before it, so the block
    // becomes (conv with bias, ReLU) x 2. The state_dict no longer has the seed's names.
    void foldBatchNorm();

private:
    torch::nn::Sequential doubleConv_;
};
TORCH_MODULE(DoubleConv);

// `maxpool_conv` = 2x2 max pooling then DoubleConv.
class DownImpl : public torch::nn::Module {
public:
    DownImpl(int inChannels, int outChannels, int padding);
    torch::Tensor forward(const torch::Tensor& x);

private:
    torch::nn::Sequential maxpoolConv_;
};
TORCH_MODULE(Down);

// `up` = 2x2/stride-2 transposed conv to half the channels; the result is zero-padded
// (cropped where larger) to the skip's size, concatenated as [skip, upsampled], then `conv`.
class UpImpl : public torch::nn::Module {
public:
    UpImpl(int inChannels, int outChannels, int padding);
    torch::Tensor forward(const torch::Tensor& deeper, const torch::Tensor& skip);

private:
    torch::nn::ConvTranspose2d up_;
    DoubleConv conv_;
};
TORCH_MODULE(Up);

// `conv_bn` = 3x3 conv with bias, BatchNorm, ReLU (the UNet3+ skip and fusion blocks).
class ConvBnReluImpl : public torch::nn::Module {
public:
    ConvBnReluImpl(int inChannels, int outChannels);
    torch::Tensor forward(const torch::Tensor& x);
    void foldBatchNorm();  // as DoubleConvImpl::foldBatchNorm

private:
    torch::nn::Sequential convBn_;
};
TORCH_MODULE(ConvBnRelu);

struct NetworkOutputs {
    // (N, outputChannels, H', W'): the full-resolution head; what inference uses.
    torch::Tensor logits;
    // Deep supervision only: the heads of decoder stages 2, 3, 4 and of the bridge,
    // upsampled to the logits' size, in that order (empty otherwise).
    std::vector<torch::Tensor> auxiliaryLogits;
    // CGM only: (N, 2) sigmoid outputs [no organ, organ] of the classification branch.
    torch::Tensor classProbabilities;
};

// What both networks share: a config, input checks, and forward() -> logits.
class SegmentationNetworkImpl : public torch::nn::Module {
public:
    explicit SegmentationNetworkImpl(const ModelConfig& config);

    const ModelConfig& config() const { return config_; }
    // Logits (N, outputChannels, H', W') for input (N, inputChannels, H, W); H', W' from
    // outputSize(config, {H, W}). In eval mode for deep supervision: the full-size head.
    torch::Tensor forward(const torch::Tensor& input) { return forwardAll(input).logits; }
    // Every head (for training with deep supervision / CGM).
    virtual NetworkOutputs forwardAll(const torch::Tensor& input) = 0;
    std::int64_t parameterCount() const;

protected:
    // core::InputError unless input is a floating (N, inputChannels, H, W) tensor of a size
    // the network takes.
    void checkInput(const torch::Tensor& input) const;

private:
    ModelConfig config_;
};

using SegmentationNetwork = std::shared_ptr<SegmentationNetworkImpl>;

// The seed's UNet: dconv, down1-4, up1-4, outc.conv (1x1).
class UNetImpl : public SegmentationNetworkImpl {
public:
    explicit UNetImpl(const ModelConfig& config);
    NetworkOutputs forwardAll(const torch::Tensor& input) override;

private:
    DoubleConv inputConv_;
    std::vector<Down> downs_;
    std::vector<Up> ups_;
    torch::nn::Conv2d outputConv_{nullptr};
};
TORCH_MODULE(UNet);

// The seed's UNet3+: the UNet encoder with padded convs, full-scale skip connections into
// four decoder stages of 5 x width channels, outconv1 (3x3); outconv2-5 and cls per variant.
class UNet3PlusImpl : public SegmentationNetworkImpl {
public:
    static constexpr int kLevels = 5;
    explicit UNet3PlusImpl(const ModelConfig& config);
    NetworkOutputs forwardAll(const torch::Tensor& input) override;

private:
    DoubleConv inputConv_;
    std::vector<Down> downs_;
    // skipConvs_[stage][level]: the block taking level `level` (1-5) into decoder stage
    // `stage` (1-4); fusion_[stage] fuses their concatenation; heads_[level] is outconvN.
    // Index 0 unused.
    std::vector<std::vector<ConvBnRelu>> skipConvs_;
    std::vector<ConvBnRelu> fusion_;
    std::vector<torch::nn::Conv2d> heads_;
    torch::nn::Sequential classifier_{nullptr};
};
TORCH_MODULE(UNet3Plus);

// Inference only: folds every BatchNorm of `network` into its convolution (same outputs in
// eval mode up to float rounding, one pass over each activation map fewer).
void foldBatchNormForInference(SegmentationNetworkImpl& network);

// A new network with LibTorch's default (seeded by torch::manual_seed) initialisation.
// Throws core::InputError for an invalid config.
SegmentationNetwork makeNetwork(const ModelConfig& config);

}  // namespace liverseg::nn

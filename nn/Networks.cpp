#include "nn/Networks.h"

#include "core/Errors.h"

#include <sstream>

namespace liverseg::nn {
namespace F = torch::nn::functional;
namespace {

int channelsAtLevel(const ModelConfig& config, int level) { return config.baseWidth << (level - 1); }

torch::nn::ReLU inplaceRelu() { return torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)); }

torch::Tensor maxPoolCeil(const torch::Tensor& x, int factor) {
    if (factor == 1) return x;
    return F::max_pool2d(x, F::MaxPool2dFuncOptions(factor).stride(factor).ceil_mode(true));
}

// As the seed's nn.Upsample(scale_factor=k, mode='bilinear'): align_corners false, and the
// scale factor (not the output size) drives the sampling positions.
torch::Tensor upsampleBilinear(const torch::Tensor& x, int factor) {
    if (factor == 1) return x;
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .scale_factor(std::vector<double>{double(factor), double(factor)})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
}

int convPadding(const ModelConfig& config) {
    return config.architecture == Architecture::UNet && config.padding == UNetPadding::Seed ? 0 : 1;
}

// conv followed by eval-mode bn as one conv: w' = w * g, b' = (b - mean) * g + beta with
// g = gamma / sqrt(var + eps) per output channel.
torch::nn::Conv2d foldedConv(const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl& bn) {
    torch::NoGradGuard noGrad;
    const auto& original = conv.options;
    torch::nn::Conv2dOptions options(original.in_channels(), original.out_channels(), original.kernel_size());
    options.stride(original.stride()).padding(original.padding()).dilation(original.dilation()).groups(original.groups());
    options.padding_mode(original.padding_mode()).bias(true);
    torch::nn::Conv2d folded(options);
    const torch::Tensor scale = bn.weight / torch::sqrt(bn.running_var + bn.options.eps());
    folded->weight.copy_(conv.weight * scale.view({-1, 1, 1, 1}));
    const torch::Tensor bias = conv.bias.defined() ? conv.bias : torch::zeros_like(bn.running_mean);
    folded->bias.copy_((bias - bn.running_mean) * scale + bn.bias);
    folded->to(conv.weight.device(), conv.weight.scalar_type());
    return folded;
}

// A Sequential of (Conv2d, BatchNorm2d, ReLU) triples as (folded Conv2d, ReLU) pairs; one
// folded already is returned as it is.
torch::nn::Sequential foldedSequence(const torch::nn::Sequential& sequence) {
    if (sequence->size() % 3 != 0 || !std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(sequence->ptr(1))) {
        return sequence;
    }
    torch::nn::Sequential folded;
    for (std::size_t i = 0; i + 2 < sequence->size(); i += 3) {
        const auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(sequence->ptr(i));
        const auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(sequence->ptr(i + 1));
        if (!conv || !bn) throw std::logic_error("foldBatchNorm: expected (Conv2d, BatchNorm2d, ReLU) blocks");
        folded->push_back(foldedConv(*conv, *bn));
        folded->push_back(inplaceRelu());
    }
    return folded;
}

}  // namespace

DoubleConvImpl::DoubleConvImpl(int inChannels, int outChannels, int padding) {
    auto conv = [padding](int in, int out) {
        return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(padding).bias(false));
    };
    doubleConv_ = register_module(
        "double_conv", torch::nn::Sequential(conv(inChannels, outChannels), torch::nn::BatchNorm2d(outChannels),
                                             inplaceRelu(), conv(outChannels, outChannels),
                                             torch::nn::BatchNorm2d(outChannels), inplaceRelu()));
}

torch::Tensor DoubleConvImpl::forward(const torch::Tensor& x) { return doubleConv_->forward(x); }

void DoubleConvImpl::foldBatchNorm() {
    const torch::nn::Sequential folded = foldedSequence(doubleConv_);
    if (folded.ptr() != doubleConv_.ptr()) doubleConv_ = replace_module("double_conv", folded);
}

DownImpl::DownImpl(int inChannels, int outChannels, int padding) {
    maxpoolConv_ = register_module(
        "maxpool_conv", torch::nn::Sequential(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)),
                                              DoubleConv(inChannels, outChannels, padding)));
}

torch::Tensor DownImpl::forward(const torch::Tensor& x) { return maxpoolConv_->forward(x); }

UpImpl::UpImpl(int inChannels, int outChannels, int padding)
    : up_(register_module("up", torch::nn::ConvTranspose2d(
                                    torch::nn::ConvTranspose2dOptions(inChannels, inChannels / 2, 2).stride(2)))),
      conv_(register_module("conv", DoubleConv(inChannels, outChannels, padding))) {}

torch::Tensor UpImpl::forward(const torch::Tensor& deeper, const torch::Tensor& skip) {
    // The transposed conv runs in its weights' dtype: LibTorch 1.13's bf16 ConvTranspose2d
    // is broken on the CPU, so bf16 inference keeps these weights in fp32.
    const auto weightType = up_->weight.scalar_type();
    torch::Tensor upsampled = up_->forward(deeper.to(weightType)).to(deeper.scalar_type());
    const std::int64_t rows = skip.size(2) - upsampled.size(2);
    const std::int64_t cols = skip.size(3) - upsampled.size(3);
    if (rows != 0 || cols != 0) {
        // Negative amounts crop, so this also covers an upsampled map larger than the skip.
        upsampled = F::pad(upsampled, F::PadFuncOptions({cols / 2, cols - cols / 2, rows / 2, rows - rows / 2}));
    }
    return conv_->forward(torch::cat({skip, upsampled}, 1));
}

ConvBnReluImpl::ConvBnReluImpl(int inChannels, int outChannels) {
    convBn_ = register_module(
        "conv_bn", torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(inChannels, outChannels, 3).padding(1)),
                                         torch::nn::BatchNorm2d(outChannels), inplaceRelu()));
}

torch::Tensor ConvBnReluImpl::forward(const torch::Tensor& x) { return convBn_->forward(x); }

void ConvBnReluImpl::foldBatchNorm() {
    const torch::nn::Sequential folded = foldedSequence(convBn_);
    if (folded.ptr() != convBn_.ptr()) convBn_ = replace_module("conv_bn", folded);
}

void foldBatchNormForInference(SegmentationNetworkImpl& network) {
    for (const auto& module : network.modules()) {
        if (auto* doubleConv = dynamic_cast<DoubleConvImpl*>(module.get())) doubleConv->foldBatchNorm();
        if (auto* convBnRelu = dynamic_cast<ConvBnReluImpl*>(module.get())) convBnRelu->foldBatchNorm();
    }
}

SegmentationNetworkImpl::SegmentationNetworkImpl(const ModelConfig& config) : config_(config) { config_.validate(); }

std::int64_t SegmentationNetworkImpl::parameterCount() const {
    std::int64_t count = 0;
    for (const auto& parameter : parameters()) count += parameter.numel();
    return count;
}

void SegmentationNetworkImpl::checkInput(const torch::Tensor& input) const {
    if (!input.defined() || input.dim() != 4 || input.size(1) != config_.inputChannels ||
        !input.is_floating_point()) {
        std::ostringstream out;
        out << "the " << config_.describe() << " takes a floating-point (N, " << config_.inputChannels
            << ", H, W) tensor, not ";
        if (!input.defined()) {
            out << "an empty tensor";
        } else {
            out << input.toString() << " " << input.sizes();
        }
        throw core::InputError(out.str());
    }
    outputSize(config_, {input.size(2), input.size(3)});
}

UNetImpl::UNetImpl(const ModelConfig& config)
    : SegmentationNetworkImpl(config),
      inputConv_(register_module("dconv", DoubleConv(config.inputChannels, config.baseWidth, convPadding(config)))) {
    if (config.architecture != Architecture::UNet) throw core::InputError("UNet built from a non-UNet config");
    const int padding = convPadding(config);
    for (int level = 2; level <= 5; ++level) {
        downs_.push_back(register_module("down" + std::to_string(level - 1),
                                         Down(channelsAtLevel(config, level - 1), channelsAtLevel(config, level), padding)));
    }
    for (int level = 4; level >= 1; --level) {
        ups_.push_back(register_module("up" + std::to_string(5 - level),
                                       Up(channelsAtLevel(config, level + 1), channelsAtLevel(config, level), padding)));
    }
    // outc.conv: the seed wraps its 1x1 output conv in a module of its own.
    auto outc = register_module("outc", std::make_shared<torch::nn::Module>());
    outputConv_ = outc->register_module(
        "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(config.baseWidth, config.outputChannels, 1)));
}

NetworkOutputs UNetImpl::forwardAll(const torch::Tensor& input) {
    checkInput(input);
    std::vector<torch::Tensor> encoder{inputConv_->forward(input)};
    for (auto& down : downs_) encoder.push_back(down->forward(encoder.back()));
    torch::Tensor x = encoder.back();
    for (std::size_t i = 0; i < ups_.size(); ++i) x = ups_[i]->forward(x, encoder[encoder.size() - 2 - i]);
    return {outputConv_->forward(x), {}, {}};
}

namespace {

// The seed's names for the block taking level `level` into decoder stage `stage`: encoder
// maps are "h<level>", deeper decoder maps "hd<level>" except that stages 4 and 3 call every
// source "h" (h4_PT_de3 is the decoder map hd4, h5_PT_de4 the bridge).
std::string skipBlockName(int stage, int level) {
    const bool seedCallsItHd = level > stage && stage <= 2;
    return (seedCallsItHd ? "hd" : "h") + std::to_string(level) + "_PT_de" + std::to_string(stage) + "_Conv_BN_ReLU";
}

}  // namespace

UNet3PlusImpl::UNet3PlusImpl(const ModelConfig& config)
    : SegmentationNetworkImpl(config),
      inputConv_(register_module("dconv", DoubleConv(config.inputChannels, config.baseWidth, 1))),
      skipConvs_(kLevels, std::vector<ConvBnRelu>(kLevels + 1, ConvBnRelu(nullptr))),
      fusion_(kLevels, ConvBnRelu(nullptr)),
      heads_(kLevels + 1, torch::nn::Conv2d(nullptr)) {
    if (config.architecture != Architecture::UNet3Plus) throw core::InputError("UNet3+ built from a non-UNet3+ config");
    for (int level = 2; level <= kLevels; ++level) {
        downs_.push_back(register_module("down" + std::to_string(level - 1),
                                         Down(channelsAtLevel(config, level - 1), channelsAtLevel(config, level), 1)));
    }
    const int catChannels = config.baseWidth;
    const int upChannels = kLevels * catChannels;
    for (int stage = kLevels - 1; stage >= 1; --stage) {
        for (int level = 1; level <= kLevels; ++level) {
            const bool fromDecoder = level > stage && level < kLevels;
            const int inChannels = fromDecoder ? upChannels : channelsAtLevel(config, level);
            skipConvs_[stage][level] = register_module(skipBlockName(stage, level), ConvBnRelu(inChannels, catChannels));
        }
        fusion_[stage] = register_module("de" + std::to_string(stage) + "_Conv_BN_ReLU", ConvBnRelu(upChannels, upChannels));
    }
    const bool deepSupervision = config.variant != UNet3PlusVariant::Plain;
    for (int level = 1; level <= (deepSupervision ? kLevels : 1); ++level) {
        const int inChannels = level == kLevels ? channelsAtLevel(config, kLevels) : upChannels;
        heads_[level] = register_module("outconv" + std::to_string(level),
                                        torch::nn::Conv2d(torch::nn::Conv2dOptions(inChannels, config.outputChannels, 3).padding(1)));
    }
    if (config.variant == UNet3PlusVariant::ClassificationGuided) {
        classifier_ = register_module(
            "cls", torch::nn::Sequential(torch::nn::Dropout(0.5),
                                         torch::nn::Conv2d(torch::nn::Conv2dOptions(channelsAtLevel(config, kLevels), 2, 1)),
                                         torch::nn::AdaptiveMaxPool2d(1), torch::nn::Sigmoid()));
    }
}

NetworkOutputs UNet3PlusImpl::forwardAll(const torch::Tensor& input) {
    checkInput(input);
    // maps[level]: encoder map for levels above the current stage's, decoder maps below;
    // level 5 is the bridge for both.
    std::vector<torch::Tensor> encoder(kLevels + 1), decoder(kLevels + 1);
    encoder[1] = inputConv_->forward(input);
    for (int level = 2; level <= kLevels; ++level) encoder[level] = downs_[level - 2]->forward(encoder[level - 1]);
    decoder[kLevels] = encoder[kLevels];
    for (int stage = kLevels - 1; stage >= 1; --stage) {
        std::vector<torch::Tensor> parts;
        for (int level = 1; level <= kLevels; ++level) {
            torch::Tensor source = level > stage ? decoder[level] : encoder[level];
            source = level < stage ? maxPoolCeil(source, 1 << (stage - level)) : upsampleBilinear(source, 1 << (level - stage));
            parts.push_back(skipConvs_[stage][level]->forward(source));
        }
        decoder[stage] = fusion_[stage]->forward(torch::cat(parts, 1));
    }
    NetworkOutputs outputs;
    outputs.logits = heads_[1]->forward(decoder[1]);
    if (config().variant == UNet3PlusVariant::Plain) return outputs;
    for (int level = 2; level <= kLevels; ++level) {
        outputs.auxiliaryLogits.push_back(upsampleBilinear(heads_[level]->forward(decoder[level]), 1 << (level - 1)));
    }
    if (config().variant == UNet3PlusVariant::ClassificationGuided) {
        outputs.classProbabilities = classifier_->forward(decoder[kLevels]).flatten(1);
        const torch::Tensor hasOrgan = outputs.classProbabilities.argmax(1).eq(1).view({-1, 1, 1, 1});
        auto gate = [&hasOrgan](const torch::Tensor& logits) {
            return torch::where(hasOrgan, logits, torch::full_like(logits, kNoOrganLogit));
        };
        outputs.logits = gate(outputs.logits);
        for (auto& head : outputs.auxiliaryLogits) head = gate(head);
    }
    return outputs;
}

SegmentationNetwork makeNetwork(const ModelConfig& config) {
    config.validate();
    if (config.architecture == Architecture::UNet) return std::make_shared<UNetImpl>(config);
    return std::make_shared<UNet3PlusImpl>(config);
}

}  // namespace liverseg::nn

#include "nn/ModelConfig.h"

#include "core/Errors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <ctime>
#include <sstream>

namespace liverseg::nn {
namespace {

constexpr int kLevels = 5;           // encoder levels, the last one is the bridge
constexpr int kMaximumBaseWidth = 256;
constexpr std::int64_t kSeedConvShrink = 4;  // two unpadded 3x3 convs per stage

[[noreturn]] void invalid(const std::string& message) { throw core::InputError(message); }

template <typename Enum, std::size_t N>
Enum parseName(const std::string& text, const char* what, const std::pair<const char*, Enum> (&names)[N]) {
    std::string accepted;
    for (const auto& [name, value] : names) {
        if (text == name) return value;
        accepted += (accepted.empty() ? "" : ", ") + std::string(name);
    }
    invalid(std::string(what) + " '" + text + "' is not one of " + accepted);
}

const std::pair<const char*, Architecture> kArchitectures[] = {{"unet", Architecture::UNet},
                                                                {"unet3plus", Architecture::UNet3Plus}};
const std::pair<const char*, UNetPadding> kPaddings[] = {{"same", UNetPadding::Same}, {"seed", UNetPadding::Seed}};
const std::pair<const char*, UNet3PlusVariant> kVariants[] = {{"plain", UNet3PlusVariant::Plain},
                                                               {"deepsup", UNet3PlusVariant::DeepSupervision},
                                                               {"cgm", UNet3PlusVariant::ClassificationGuided}};

template <typename T>
T field(const nlohmann::json& json, const char* name, const char* where, T fallback) {
    const auto found = json.find(name);
    if (found == json.end() || found->is_null()) return fallback;
    try {
        return found->get<T>();
    } catch (const nlohmann::json::exception&) {
        invalid(std::string(where) + ": field '" + name + "' has the wrong type (" + found->dump() + ")");
    }
}

void requireObject(const nlohmann::json& json, const char* where) {
    if (!json.is_object()) invalid(std::string(where) + " is not a JSON object");
}

}  // namespace

std::string toString(Architecture architecture) {
    return architecture == Architecture::UNet ? "unet" : "unet3plus";
}
std::string toString(UNetPadding padding) { return padding == UNetPadding::Same ? "same" : "seed"; }
std::string toString(UNet3PlusVariant variant) {
    switch (variant) {
        case UNet3PlusVariant::Plain: return "plain";
        case UNet3PlusVariant::DeepSupervision: return "deepsup";
        case UNet3PlusVariant::ClassificationGuided: return "cgm";
    }
    return "plain";
}

Architecture parseArchitecture(const std::string& text) { return parseName(text, "architecture", kArchitectures); }
UNetPadding parseUNetPadding(const std::string& text) { return parseName(text, "padding", kPaddings); }
UNet3PlusVariant parseUNet3PlusVariant(const std::string& text) {
    return parseName(text, "UNet3+ variant", kVariants);
}

void ModelConfig::validate() const {
    if (inputChannels < 1 || inputChannels > 64) {
        invalid("model input channels must be 1 to 64, not " + std::to_string(inputChannels));
    }
    if (outputChannels < 1 || outputChannels > 64) {
        invalid("model output channels must be 1 to 64, not " + std::to_string(outputChannels));
    }
    if (baseWidth < 1 || baseWidth > kMaximumBaseWidth) {
        invalid("model base width must be 1 to 256, not " + std::to_string(baseWidth));
    }
}

std::string ModelConfig::describe() const {
    std::ostringstream out;
    out << toString(architecture) << " (width " << baseWidth << ", " << inputChannels << " -> " << outputChannels
        << " channels, ";
    if (architecture == Architecture::UNet) {
        out << (padding == UNetPadding::Same ? "same padding" : "seed padding: unpadded convs");
    } else {
        switch (variant) {
            case UNet3PlusVariant::Plain: out << "plain"; break;
            case UNet3PlusVariant::DeepSupervision: out << "deep supervision"; break;
            case UNet3PlusVariant::ClassificationGuided: out << "deep supervision + classification-guided module"; break;
        }
    }
    out << ")";
    return out.str();
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
    return a.architecture == b.architecture && a.inputChannels == b.inputChannels &&
           a.outputChannels == b.outputChannels && a.baseWidth == b.baseWidth && a.padding == b.padding &&
           a.variant == b.variant;
}

std::int64_t minimumInputSide(const ModelConfig& config) {
    if (config.architecture == Architecture::UNet && config.padding == UNetPadding::Seed) {
        // Walk up from a 1-pixel bridge output: each level's conv input must be the conv
        // shrink plus twice what the next level's convs need (5 -> 14 -> 32 -> 68 -> 140).
        std::int64_t side = 1 + kSeedConvShrink;
        for (int level = 1; level < kLevels; ++level) side = 2 * side + kSeedConvShrink;
        return side;
    }
    return std::int64_t(1) << (kLevels - 1);
}

std::int64_t inputSideMultiple(const ModelConfig& config) {
    return config.architecture == Architecture::UNet3Plus ? std::int64_t(1) << (kLevels - 1) : 1;
}

SpatialSize outputSize(const ModelConfig& config, SpatialSize input) {
    const std::int64_t minimum = minimumInputSide(config);
    const std::int64_t multiple = inputSideMultiple(config);
    for (const std::int64_t side : {input.height, input.width}) {
        if (side < minimum || side % multiple != 0) {
            std::ostringstream out;
            out << "a " << input.height << "x" << input.width << " input does not fit the " << config.describe()
                << ": each side must be at least " << minimum;
            if (multiple > 1) out << " and a multiple of " << multiple;
            invalid(out.str());
        }
    }
    if (config.architecture == Architecture::UNet && config.padding == UNetPadding::Seed) {
        return {input.height - 2 * kSeedConvShrink, input.width - 2 * kSeedConvShrink};
    }
    return input;
}

void Preprocessing::validate() const {
    if (!std::isfinite(windowLowHu) || !std::isfinite(windowHighHu) || windowLowHu >= windowHighHu) {
        invalid("preprocessing HU window must have low < high, not " + std::to_string(windowLowHu) + " .. " +
                std::to_string(windowHighHu));
    }
    if (!std::isfinite(pixelSpacingMm) || pixelSpacingMm <= 0) {
        invalid("preprocessing pixel spacing must be positive, not " + std::to_string(pixelSpacingMm));
    }
    if (inputSize < 16 || inputSize > 4096) {
        invalid("preprocessing input size must be 16 to 4096, not " + std::to_string(inputSize));
    }
    if (sliceContext < 1 || sliceContext % 2 == 0) {
        invalid("preprocessing slice context must be an odd number of slices, not " + std::to_string(sliceContext));
    }
}

bool operator==(const Preprocessing& a, const Preprocessing& b) {
    return a.windowLowHu == b.windowLowHu && a.windowHighHu == b.windowHighHu &&
           a.pixelSpacingMm == b.pixelSpacingMm && a.inputSize == b.inputSize && a.sliceContext == b.sliceContext;
}

bool operator==(const TrainingMetadata& a, const TrainingMetadata& b) {
    return a.data == b.data && a.epochs == b.epochs && a.validationDice == b.validationDice &&
           a.parentCheckpoint == b.parentCheckpoint && a.date == b.date && a.notes == b.notes;
}

void CheckpointInfo::validate() const {
    config.validate();
    preprocessing.validate();
    if (preprocessing.sliceContext != config.inputChannels) {
        invalid("preprocessing slice context (" + std::to_string(preprocessing.sliceContext) +
                ") must equal the model's input channels (" + std::to_string(config.inputChannels) + ")");
    }
    if (training.epochs < 0) invalid("training epochs must not be negative");
    if (training.validationDice && !(*training.validationDice >= 0 && *training.validationDice <= 1)) {
        invalid("validation Dice must be between 0 and 1");
    }
}

bool operator==(const CheckpointInfo& a, const CheckpointInfo& b) {
    return a.config == b.config && a.preprocessing == b.preprocessing && a.training == b.training;
}

void to_json(nlohmann::json& json, const ModelConfig& config) {
    json = {{"architecture", toString(config.architecture)},
            {"input_channels", config.inputChannels},
            {"output_channels", config.outputChannels},
            {"base_width", config.baseWidth},
            {"padding", toString(config.padding)},
            {"variant", toString(config.variant)}};
}

void from_json(const nlohmann::json& json, ModelConfig& config) {
    requireObject(json, "model config");
    const char* where = "model config";
    ModelConfig parsed;
    const auto architecture = field<std::string>(json, "architecture", where, "");
    if (architecture.empty()) invalid("model config has no 'architecture'");
    parsed.architecture = parseArchitecture(architecture);
    parsed.inputChannels = field(json, "input_channels", where, parsed.inputChannels);
    parsed.outputChannels = field(json, "output_channels", where, parsed.outputChannels);
    parsed.baseWidth = field(json, "base_width", where, parsed.baseWidth);
    parsed.padding = parseUNetPadding(field<std::string>(json, "padding", where, "same"));
    parsed.variant = parseUNet3PlusVariant(field<std::string>(json, "variant", where, "plain"));
    parsed.validate();
    config = parsed;
}

void to_json(nlohmann::json& json, const Preprocessing& p) {
    json = {{"hu_window", {p.windowLowHu, p.windowHighHu}},
            {"pixel_spacing_mm", p.pixelSpacingMm},
            {"input_size", p.inputSize},
            {"slice_context", p.sliceContext}};
}

void from_json(const nlohmann::json& json, Preprocessing& p) {
    requireObject(json, "preprocessing");
    const char* where = "preprocessing";
    Preprocessing parsed;
    const auto window = field<std::vector<double>>(json, "hu_window", where, {parsed.windowLowHu, parsed.windowHighHu});
    if (window.size() != 2) invalid("preprocessing: 'hu_window' must be [low, high]");
    parsed.windowLowHu = window[0];
    parsed.windowHighHu = window[1];
    parsed.pixelSpacingMm = field(json, "pixel_spacing_mm", where, parsed.pixelSpacingMm);
    parsed.inputSize = field(json, "input_size", where, parsed.inputSize);
    parsed.sliceContext = field(json, "slice_context", where, parsed.sliceContext);
    parsed.validate();
    p = parsed;
}

void to_json(nlohmann::json& json, const TrainingMetadata& m) {
    json = {{"data", m.data},
            {"epochs", m.epochs},
            {"validation_dice", m.validationDice ? nlohmann::json(*m.validationDice) : nlohmann::json(nullptr)},
            {"parent_checkpoint", m.parentCheckpoint},
            {"date", m.date},
            {"notes", m.notes}};
}

void from_json(const nlohmann::json& json, TrainingMetadata& m) {
    requireObject(json, "training metadata");
    const char* where = "training metadata";
    TrainingMetadata parsed;
    parsed.data = field<std::string>(json, "data", where, "");
    parsed.epochs = field(json, "epochs", where, 0);
    const auto dice = json.find("validation_dice");
    if (dice != json.end() && !dice->is_null()) parsed.validationDice = field(json, "validation_dice", where, 0.0);
    parsed.parentCheckpoint = field<std::string>(json, "parent_checkpoint", where, "");
    parsed.date = field<std::string>(json, "date", where, "");
    parsed.notes = field<std::string>(json, "notes", where, "");
    m = parsed;
}

void to_json(nlohmann::json& json, const CheckpointInfo& info) {
    json = {{"model", info.config}, {"preprocessing", info.preprocessing}, {"training", info.training}};
}

void from_json(const nlohmann::json& json, CheckpointInfo& info) {
    requireObject(json, "checkpoint metadata");
    const auto model = json.find("model");
    if (model == json.end()) invalid("checkpoint metadata has no 'model' section");
    CheckpointInfo parsed;
    parsed.config = model->get<ModelConfig>();
    if (json.contains("preprocessing")) parsed.preprocessing = json.at("preprocessing").get<Preprocessing>();
    if (json.contains("training")) parsed.training = json.at("training").get<TrainingMetadata>();
    parsed.validate();
    info = parsed;
}

std::string toJsonText(const CheckpointInfo& info) { return nlohmann::json(info).dump(); }

CheckpointInfo checkpointInfoFromJsonText(const std::string& text) {
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& error) {
        invalid(std::string("checkpoint metadata is not valid JSON: ") + error.what());
    }
    return json.get<CheckpointInfo>();
}

std::string currentUtcTime() {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

}  // namespace liverseg::nn

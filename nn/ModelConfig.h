#pragma once
// What a network is (ModelConfig), what input it expects (Preprocessing) and where its
// weights came from (TrainingMetadata). Torch-free, so any layer may include it.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace liverseg::nn {

enum class Architecture { UNet, UNet3Plus };

// UNet only. Same: padded 3x3 convs, output size = input size (any size >= 16).
// Seed: the seed's unpadded 3x3 convs; the upsampled map is zero-padded to the skip's size
// before concatenation, so 256 in -> 248 out (input >= 140; output = input - 8). The
// seed blog's literal Up.forward crops the skip instead, which fails at 256 (25 vs 24 at
// the second up stage); padding the upsampled map is the version that gives 248.
enum class UNetPadding { Same, Seed };

// UNet3+ only. Plain: the seed's network (one 3x3 output conv on the finest decoder stage).
// DeepSupervision: a 3x3 head on every decoder stage and on the bridge, bilinearly upsampled
// to full size (UNet3+ paper). ClassificationGuided: deep supervision plus the paper's
// classification-guided module (dropout, 1x1 conv to 2 classes, global max pool, sigmoid on
// the bridge); where its argmax says "no organ", every head's logits are set to
// kNoOrganLogit (probability ~0), the logit form of the paper's multiplication.
enum class UNet3PlusVariant { Plain, DeepSupervision, ClassificationGuided };

constexpr double kNoOrganLogit = -100.0;

struct ModelConfig {
    Architecture architecture = Architecture::UNet;
    int inputChannels = 3;   // the slice and its two neighbours
    int outputChannels = 1;  // liver logits
    int baseWidth = 64;      // 64 = the seed; channels per level: w, 2w, 4w, 8w, 16w
    UNetPadding padding = UNetPadding::Same;
    UNet3PlusVariant variant = UNet3PlusVariant::Plain;

    // Throws core::InputError naming the bad field.
    void validate() const;
    // e.g. "unet3plus (width 64, 3 -> 1 channels, deep supervision)"
    std::string describe() const;
};

bool operator==(const ModelConfig& a, const ModelConfig& b);
inline bool operator!=(const ModelConfig& a, const ModelConfig& b) { return !(a == b); }

std::string toString(Architecture architecture);  // "unet" | "unet3plus"
std::string toString(UNetPadding padding);        // "same" | "seed"
std::string toString(UNet3PlusVariant variant);   // "plain" | "deepsup" | "cgm"
// Parse the strings above; throw core::InputError listing the accepted values.
Architecture parseArchitecture(const std::string& text);
UNetPadding parseUNetPadding(const std::string& text);
UNet3PlusVariant parseUNet3PlusVariant(const std::string& text);

struct SpatialSize {
    std::int64_t height = 0;
    std::int64_t width = 0;
};
inline bool operator==(SpatialSize a, SpatialSize b) { return a.height == b.height && a.width == b.width; }

// Input sizes a network accepts: each side >= minimumInputSide and a multiple of
// inputSideMultiple (UNet3+: 16, because its ceil-mode pooling and x2^k bilinear upsampling
// only line up then, as in the seed).
std::int64_t minimumInputSide(const ModelConfig& config);
std::int64_t inputSideMultiple(const ModelConfig& config);
// The logits' spatial size for an input size; throws core::InputError when the network
// cannot take that size, saying what sizes it takes.
SpatialSize outputSize(const ModelConfig& config, SpatialSize input);

// How slices must be prepared for the network (the inference engine does it).
struct Preprocessing {
    double windowLowHu = -100.0;  // HU mapped to 0
    double windowHighHu = 200.0;  // HU mapped to 1 (clipped outside)
    double pixelSpacingMm = 1.5;  // in-plane spacing the model was trained at
    int inputSize = 256;          // in-plane side the model was trained at
    int sliceContext = 3;         // slices per input (= input channels), centre slice in the middle

    void validate() const;
};
bool operator==(const Preprocessing& a, const Preprocessing& b);

struct TrainingMetadata {
    std::string data;              // what it was trained on
    int epochs = 0;
    std::optional<double> validationDice;
    std::string parentCheckpoint;  // fine-tuned from
    std::string date;              // ISO 8601, when the weights were made
    std::string notes;
};
bool operator==(const TrainingMetadata& a, const TrainingMetadata& b);

// Everything a checkpoint says about its weights.
struct CheckpointInfo {
    ModelConfig config;
    Preprocessing preprocessing;
    TrainingMetadata training;

    // Each part valid, and preprocessing.sliceContext == config.inputChannels.
    void validate() const;
};
bool operator==(const CheckpointInfo& a, const CheckpointInfo& b);

// JSON forms (snake_case keys). The parsers throw core::InputError naming the bad field;
// unknown keys are ignored so newer files stay readable where they can be.
void to_json(nlohmann::json& json, const ModelConfig& config);
void from_json(const nlohmann::json& json, ModelConfig& config);
void to_json(nlohmann::json& json, const Preprocessing& preprocessing);
void from_json(const nlohmann::json& json, Preprocessing& preprocessing);
void to_json(nlohmann::json& json, const TrainingMetadata& metadata);
void from_json(const nlohmann::json& json, TrainingMetadata& metadata);
void to_json(nlohmann::json& json, const CheckpointInfo& info);
void from_json(const nlohmann::json& json, CheckpointInfo& info);

std::string toJsonText(const CheckpointInfo& info);  // compact
CheckpointInfo checkpointInfoFromJsonText(const std::string& text);

// The current UTC time as ISO 8601 ("2024-05-01T12:00:00Z").
std::string currentUtcTime();

}  // namespace liverseg::nn

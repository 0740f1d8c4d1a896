// liverseg model: describe, init, import, export and run network checkpoints.
#include "app/Commands.h"
#include "core/Errors.h"
#include "nn/ModelConfig.h"
#include "nn/ModelFiles.h"
#include "nn/Threads.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace liverseg::app {
namespace {

const char* kHelp = R"(usage: liverseg model SUBCOMMAND [OPTIONS]   (liverseg model SUBCOMMAND --help)

Network checkpoints. A checkpoint (.pt) holds the network's configuration, the
preprocessing it expects, training metadata and the weights; Python reads it with
torch.load (its "state_dict" entry has the seed's PyTorch key names).

subcommands:
  describe   architecture, parameter count, preprocessing and training metadata
  init       a checkpoint with random weights (deterministic per --seed)
  import     a checkpoint from a PyTorch state_dict file (the seed's key names)
  export     a checkpoint's weights as a PyTorch state_dict file
  forward    run the raw network on a tensor saved with torch.save, write the logits
)";

const char* kArchitectureOptions = R"(architecture:
  --arch unet|unet3plus      the network
  --width N                  base width (64 = the seed; 16 or 32 for CPU use) [64]
  --padding same|seed        UNet only: same = padded convs, output size = input size;
                             seed = the seed's unpadded convs, 256 in -> 248 out [same]
  --variant plain|deepsup|cgm  UNet3+ only: deep supervision heads, or deep supervision
                             plus the classification-guided module [plain]
  --in-channels N            input channels = slices per input (3 = slice + neighbours) [3]
  --out-channels N           output channels [1]
)";

const char* kCheckpointOptions = R"(preprocessing the model expects (stored in the checkpoint):
  --hu-window LOW,HIGH       HU mapped to 0 and 1 [-100,200]
  --spacing MM               in-plane pixel spacing it was trained at [1.5]
  --input-size N             in-plane side it was trained at [256]
training metadata (stored in the checkpoint):
  --data TEXT  --epochs N  --dice X  --parent CKPT  --date ISO8601  --notes TEXT
)";

const char* kThreadsOption = "  --threads N                LibTorch threads (0 = every core) [0]\n";

void printDescribeHelp() {
    std::cout << "usage: liverseg model describe CKPT [--json]\n"
                 "       liverseg model describe --arch unet|unet3plus [--width N] [...] [--json]\n\n"
                 "Validates and describes a checkpoint, or describes an architecture: configuration,\n"
                 "parameter count, input sizes it takes, preprocessing and training metadata.\n\n"
              << kArchitectureOptions << "  --json                     print JSON\n" << kThreadsOption;
}

void printInitHelp() {
    std::cout << "usage: liverseg model init --arch unet|unet3plus [--width N] [--seed S] [...] --out CKPT\n\n"
                 "Writes a checkpoint with LibTorch's default random initialisation; the same seed gives\n"
                 "the same weights.\n\n"
              << kArchitectureOptions << "  --seed S                   random seed [0]\n"
              << "  --out CKPT                 the checkpoint to write\n"
              << kCheckpointOptions << kThreadsOption;
}

void printImportHelp() {
    std::cout << "usage: liverseg model import PTH --arch unet|unet3plus [--width N] [--padding P] [...] --out CKPT\n\n"
                 "Makes a checkpoint from a PyTorch state_dict file, e.g. torch.save(model.state_dict(), PTH)\n"
                 "from the seed's code (a dict holding it under 'state_dict' or 'model_state_dict', and\n"
                 "nn.DataParallel's 'module.' prefix, are accepted). Every key must match the chosen\n"
                 "architecture exactly.\n\n"
              << kArchitectureOptions << "  --out CKPT                 the checkpoint to write\n"
              << kCheckpointOptions << kThreadsOption;
}

void printExportHelp() {
    std::cout << "usage: liverseg model export CKPT --out PTH\n\n"
                 "Writes the checkpoint's weights as a PyTorch state_dict file (torch.save format, the\n"
                 "seed's key names): in Python, model.load_state_dict(torch.load(PTH)).\n";
}

void printForwardHelp() {
    std::cout << "usage: liverseg model forward CKPT --input X.pt --output Y.pt [--threads N]\n\n"
                 "Runs the raw network (eval mode) on a tensor saved with torch.save, (N, C, H, W) or\n"
                 "(C, H, W), and writes the logits (before sigmoid) the same way. No preprocessing: for\n"
                 "checking parity with a PyTorch copy of the network.\n\n"
              << kThreadsOption;
}

std::string withThousands(std::int64_t value) {
    std::string digits = std::to_string(value);
    for (int at = int(digits.size()) - 3; at > 0; at -= 3) digits.insert(std::size_t(at), ",");
    return digits;
}

std::string shapeText(const std::vector<std::int64_t>& shape) {
    std::ostringstream out;
    out << "[";
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << "]";
    return out.str();
}

nn::ModelConfig readConfig(Arguments& arguments) {
    nn::ModelConfig config;
    config.architecture = nn::parseArchitecture(arguments.required("--arch"));
    config.baseWidth = arguments.integer("--width", config.baseWidth, 1, 256);
    config.inputChannels = arguments.integer("--in-channels", config.inputChannels, 1, 64);
    config.outputChannels = arguments.integer("--out-channels", config.outputChannels, 1, 64);
    const auto padding = arguments.value("--padding");
    const auto variant = arguments.value("--variant");
    const bool isUNet = config.architecture == nn::Architecture::UNet;
    if (padding && !isUNet) throw UsageError(arguments.command() + ": --padding is for --arch unet");
    if (variant && isUNet) throw UsageError(arguments.command() + ": --variant is for --arch unet3plus");
    if (padding) config.padding = nn::parseUNetPadding(*padding);
    if (variant) config.variant = nn::parseUNet3PlusVariant(*variant);
    config.validate();
    return config;
}

nn::CheckpointInfo readCheckpointInfo(Arguments& arguments, const std::string& defaultDate,
                                      const std::string& defaultNotes) {
    nn::CheckpointInfo info;
    info.config = readConfig(arguments);
    nn::Preprocessing& pre = info.preprocessing;
    if (const auto window = arguments.numberList("--hu-window", 2)) {
        pre.windowLowHu = (*window)[0];
        pre.windowHighHu = (*window)[1];
    }
    pre.pixelSpacingMm = arguments.number("--spacing", pre.pixelSpacingMm);
    pre.inputSize = arguments.integer("--input-size", pre.inputSize, 16, 4096);
    pre.sliceContext = info.config.inputChannels;
    nn::TrainingMetadata& training = info.training;
    training.data = arguments.value("--data").value_or("");
    training.epochs = arguments.integer("--epochs", 0, 0, INT_MAX);
    if (const auto dice = arguments.value("--dice")) training.validationDice = parseNumber(*dice, arguments.command() + " --dice");
    training.parentCheckpoint = arguments.value("--parent").value_or("");
    training.date = arguments.value("--date").value_or(defaultDate);
    training.notes = arguments.value("--notes").value_or(defaultNotes);
    info.validate();
    return info;
}

void applyThreads(Arguments& arguments) { nn::setIntraOpThreads(arguments.integer("--threads", 0, 0, 1024)); }

nlohmann::json describeJson(const std::string& source, const nn::ModelDescription& d) {
    return {{"source", source},
            {"model", d.info.config},
            {"description", d.info.config.describe()},
            {"parameters", d.parameterCount},
            {"state_dict_tensors", d.stateTensorCount},
            {"weight_bytes", d.weightBytes},
            {"input", {{"minimum_side", nn::minimumInputSide(d.info.config)},
                       {"side_multiple", nn::inputSideMultiple(d.info.config)}}},
            {"preprocessing", d.info.preprocessing},
            {"training", d.info.training}};
}

void printDescription(const std::string& source, const nn::ModelDescription& d, bool fromCheckpoint) {
    const auto& c = d.info.config;
    const auto& p = d.info.preprocessing;
    const auto& t = d.info.training;
    const auto row = [](const char* label) -> std::ostream& { return std::cout << std::setw(16) << std::left << label; };
    row("source") << source << "\n";
    row("model") << c.describe() << "\n";
    row("parameters") << withThousands(d.parameterCount) << "\n";
    row("state_dict") << d.stateTensorCount << " tensors, " << std::fixed << std::setprecision(1)
                      << double(d.weightBytes) / (1024.0 * 1024.0) << " MiB\n";
    std::cout.unsetf(std::ios::fixed);
    std::cout << std::setprecision(6);
    const nn::SpatialSize example = nn::outputSize(c, {p.inputSize, p.inputSize});
    row("input") << c.inputChannels << " x H x W, each side >= " << nn::minimumInputSide(c);
    if (nn::inputSideMultiple(c) > 1) std::cout << " and a multiple of " << nn::inputSideMultiple(c);
    std::cout << " (" << p.inputSize << " in -> " << example.height << " out)\n";
    row("output") << c.outputChannels << " channel(s) of logits (apply sigmoid for probabilities)\n";
    const char* note = fromCheckpoint ? "" : "  (defaults; a checkpoint records its own)";
    row("HU window") << p.windowLowHu << " .. " << p.windowHighHu << " -> 0 .. 1" << note << "\n";
    row("pixel spacing") << p.pixelSpacingMm << " mm in-plane, input size " << p.inputSize << ", slice context "
                         << p.sliceContext << "\n";
    if (!fromCheckpoint) return;
    row("trained on") << (t.data.empty() ? "-" : t.data) << "\n";
    row("epochs") << t.epochs << "\n";
    row("validation Dice");
    if (t.validationDice) std::cout << *t.validationDice << "\n"; else std::cout << "-\n";
    row("parent") << (t.parentCheckpoint.empty() ? "-" : t.parentCheckpoint) << "\n";
    row("date") << (t.date.empty() ? "-" : t.date) << "\n";
    if (!t.notes.empty()) row("notes") << t.notes << "\n";
}

int runDescribe(Arguments& arguments) {
    const bool json = arguments.flag("--json");
    applyThreads(arguments);
    const std::string source = arguments.positionals(1, 1).front();
    const nn::ModelDescription description = nn::describeCheckpoint(source);
    if (json) {
        std::cout << describeJson(source, description).dump(2) << "\n";
    } else {
        printDescription(source, description, true);
    }
    return 0;
}

int runDescribeArchitecture(Arguments& arguments) {
    const bool json = arguments.flag("--json");
    applyThreads(arguments);
    const nn::ModelConfig config = readConfig(arguments);
    arguments.positionals(0, 0);
    const nn::ModelDescription description = nn::describeArchitecture(config);
    const std::string source = "architecture only (no weights)";
    if (json) {
        std::cout << describeJson(source, description).dump(2) << "\n";
    } else {
        printDescription(source, description, false);
    }
    return 0;
}

int runInit(Arguments& arguments) {
    applyThreads(arguments);
    const int seed = arguments.integer("--seed", 0, 0, INT_MAX);
    const std::string out = arguments.required("--out");
    const nn::CheckpointInfo info =
        readCheckpointInfo(arguments, nn::currentUtcTime(), "random initialisation, seed " + std::to_string(seed));
    arguments.positionals(0, 0);
    nn::initCheckpoint(info, std::uint64_t(seed), out);
    std::cout << "wrote " << out << ": " << info.config.describe() << ", random weights (seed " << seed << ")\n";
    return 0;
}

int runImport(Arguments& arguments) {
    applyThreads(arguments);
    const std::string out = arguments.required("--out");
    // The date stays empty unless given: when the imported weights were trained is unknown.
    nn::CheckpointInfo info = readCheckpointInfo(arguments, "", "");
    const std::string input = arguments.positionals(1, 1).front();
    if (info.training.notes.empty()) info.training.notes = "imported from " + input;
    nn::importStateDict(input, info, out);
    std::cout << "wrote " << out << ": " << info.config.describe() << ", weights from " << input << "\n";
    return 0;
}

int runExport(Arguments& arguments) {
    const std::string out = arguments.required("--out");
    const std::string checkpoint = arguments.positionals(1, 1).front();
    nn::exportStateDict(checkpoint, out);
    std::cout << "wrote " << out << ": the state_dict of " << checkpoint << "\n";
    return 0;
}

int runForward(Arguments& arguments) {
    const int threads = nn::setIntraOpThreads(arguments.integer("--threads", 0, 0, 1024));
    const std::string input = arguments.required("--input");
    const std::string output = arguments.required("--output");
    const std::string checkpoint = arguments.positionals(1, 1).front();
    const nn::ForwardRun run = nn::forwardTensorFile(checkpoint, input, output);
    std::cout << "wrote " << output << ": logits " << shapeText(run.outputShape) << " from input "
              << shapeText(run.inputShape) << "; forward " << std::fixed << std::setprecision(3) << run.seconds
              << " s on " << threads << " thread(s)\n";
    return 0;
}

struct Subcommand {
    const char* name;
    void (*help)();
    int (*run)(Arguments&);
};

int runDescribeEither(Arguments& arguments);

const Subcommand kSubcommands[] = {
    {"describe", printDescribeHelp, runDescribeEither}, {"init", printInitHelp, runInit},
    {"import", printImportHelp, runImport},             {"export", printExportHelp, runExport},
    {"forward", printForwardHelp, runForward},
};

// describe takes either a checkpoint or --arch; which one decides the options it reads.
int runDescribeEither(Arguments& arguments) {
    // value() consumes the option, so look for it without taking it.
    Arguments probe = arguments;
    return probe.value("--arch") ? runDescribeArchitecture(arguments) : runDescribe(arguments);
}

}  // namespace

int runModel(Arguments& arguments) {
    const std::vector<std::string> rest = arguments.takeRemaining();
    if (rest.empty()) {
        throw UsageError("model: a subcommand is needed: describe, init, import, export or forward "
                         "(see liverseg model --help)");
    }
    if (rest.front() == "--help" || rest.front() == "-h" || rest.front() == "help") {
        std::cout << kHelp;
        return 0;
    }
    for (const auto& subcommand : kSubcommands) {
        if (rest.front() != subcommand.name) continue;
        Arguments sub(std::string("model ") + subcommand.name, std::vector<std::string>(rest.begin() + 1, rest.end()));
        if (sub.wantsHelp()) {
            subcommand.help();
            return 0;
        }
        const int code = subcommand.run(sub);
        sub.requireAllUsed();
        return code;
    }
    throw UsageError("model: unknown subcommand '" + rest.front() +
                     "' (describe, init, import, export, forward; see liverseg model --help)");
}

}  // namespace liverseg::app

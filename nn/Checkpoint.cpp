#include "nn/Checkpoint.h"

#include "core/Errors.h"
#include "nn/TorchSaveFile.h"

#include <torch/types.h>

#include <sstream>

namespace liverseg::nn {
namespace {

const std::string kDataParallelPrefix = "module.";

std::string shapeText(const torch::Tensor& tensor) {
    std::ostringstream out;
    out << tensor.sizes();
    return out.str();
}

// "the unet (width 64, ...)" for our networks, "the module" otherwise.
std::string describeModule(const torch::nn::Module& module) {
    if (const auto* network = dynamic_cast<const SegmentationNetworkImpl*>(&module)) {
        return "the " + network->config().describe();
    }
    return "the module";
}

std::string firstAndCount(const std::vector<std::string>& names, const char* what) {
    std::string text = std::string(what) + " '" + names.front() + "'";
    if (names.size() > 1) text += " (and " + std::to_string(names.size() - 1) + " more)";
    return text;
}

// A GenericDict of string -> tensor as a StateDict; `what` names it in errors.
StateDict tensorDict(const c10::IValue& value, const std::string& what) {
    if (!value.isGenericDict()) throw core::InputError(what + " is not a dict of name -> tensor");
    StateDict weights;
    for (const auto& entry : value.toGenericDict()) {
        if (!entry.key().isString()) throw core::InputError(what + " has a key that is not a string");
        const std::string& name = entry.key().toStringRef();
        if (!entry.value().isTensor()) throw core::InputError(what + ": '" + name + "' is not a tensor");
        weights.insert(name, entry.value().toTensor());
    }
    return weights;
}

bool allTensors(const c10::impl::GenericDict& dict) {
    for (const auto& entry : dict) {
        if (!entry.value().isTensor()) return false;
    }
    return !dict.empty();
}

std::optional<c10::IValue> entry(const c10::impl::GenericDict& dict, const std::string& key) {
    if (dict.keyType()->kind() != c10::TypeKind::StringType) return std::nullopt;
    const auto found = dict.find(key);
    if (found == dict.end()) return std::nullopt;
    return found->value();
}

StateDict withoutDataParallelPrefix(const StateDict& weights) {
    for (const auto& item : weights) {
        if (item.key().rfind(kDataParallelPrefix, 0) != 0) return weights;
    }
    StateDict stripped;
    for (const auto& item : weights) stripped.insert(item.key().substr(kDataParallelPrefix.size()), item.value());
    return stripped;
}

c10::Dict<std::string, torch::Tensor> toDict(const StateDict& weights) {
    c10::Dict<std::string, torch::Tensor> dict;
    for (const auto& item : weights) dict.insert(item.key(), item.value().detach().to(torch::kCPU));
    return dict;
}

}  // namespace

StateDict stateDict(const torch::nn::Module& module) {
    StateDict weights;
    for (const auto& child : module.named_modules("", /*include_self=*/true)) {
        const std::string prefix = child.key().empty() ? "" : child.key() + ".";
        for (const auto& parameter : child.value()->named_parameters(/*recurse=*/false)) {
            weights.insert(prefix + parameter.key(), parameter.value());
        }
        for (const auto& buffer : child.value()->named_buffers(/*recurse=*/false)) {
            weights.insert(prefix + buffer.key(), buffer.value());
        }
    }
    return weights;
}

void loadStateDict(torch::nn::Module& module, const StateDict& weights, const std::string& source) {
    StateDict expected = stateDict(module);
    std::vector<std::string> missing, unexpected;
    for (const auto& item : expected) {
        if (!weights.contains(item.key())) missing.push_back(item.key());
    }
    for (const auto& item : weights) {
        if (!expected.contains(item.key())) unexpected.push_back(item.key());
    }
    if (!missing.empty() || !unexpected.empty()) {
        std::string message = source + ": the weights do not fit " + describeModule(module) + ": ";
        if (!missing.empty()) message += firstAndCount(missing, "missing");
        if (!missing.empty() && !unexpected.empty()) message += ", ";
        if (!unexpected.empty()) message += firstAndCount(unexpected, "unexpected");
        throw core::InputError(message);
    }
    for (const auto& item : expected) {
        const torch::Tensor& given = weights[item.key()];
        const torch::Tensor& target = item.value();
        if (given.sizes() != target.sizes()) {
            throw core::InputError(source + ": weight '" + item.key() + "' has shape " + shapeText(given) + ", " +
                                   describeModule(module) + " expects " + shapeText(target));
        }
        if (given.is_floating_point() != target.is_floating_point()) {
            throw core::InputError(source + ": weight '" + item.key() + "' is " +
                                   std::string(c10::toString(given.scalar_type())) + ", expected " +
                                   std::string(c10::toString(target.scalar_type())));
        }
    }
    torch::NoGradGuard noGrad;
    for (auto& item : expected) item.value().copy_(weights[item.key()]);
}

StateDict readStateDictFile(const std::filesystem::path& path) {
    const std::string name = path.string();
    const c10::IValue loaded = readTorchSaveFile(path);
    if (!loaded.isGenericDict()) throw core::InputError(name + ": holds a " + loaded.tagKind() + ", not a state_dict");
    const auto dict = loaded.toGenericDict();
    if (const auto format = entry(dict, "format"); format && format->isString() && format->toStringRef() == kCheckpointFormat) {
        throw core::InputError(name + ": is a liverseg checkpoint, not a plain state_dict (use it as it is, or "
                                      "`liverseg model export` it)");
    }
    if (!allTensors(dict)) {
        for (const char* key : {"state_dict", "model_state_dict"}) {
            if (const auto nested = entry(dict, key)) return tensorDict(*nested, name + " [" + key + "]");
        }
    }
    return tensorDict(loaded, name);
}

void writeStateDictFile(const std::filesystem::path& path, const StateDict& weights) {
    writeTorchSaveFile(path, toDict(weights));
}

SegmentationNetwork networkFromStateDict(const ModelConfig& config, const StateDict& weights,
                                         const std::string& source) {
    SegmentationNetwork network = makeNetwork(config);
    loadStateDict(*network, withoutDataParallelPrefix(weights), source);
    network->eval();
    return network;
}

void saveCheckpoint(const std::filesystem::path& path, const CheckpointInfo& info,
                    const SegmentationNetworkImpl& network) {
    info.validate();
    if (info.config != network.config()) {
        throw std::invalid_argument("saveCheckpoint: the info's config (" + info.config.describe() +
                                    ") is not the network's (" + network.config().describe() + ")");
    }
    c10::impl::GenericDict checkpoint(c10::StringType::get(), c10::AnyType::get());
    checkpoint.insert("format", std::string(kCheckpointFormat));
    checkpoint.insert("version", std::int64_t(kCheckpointVersion));
    checkpoint.insert("metadata", toJsonText(info));
    checkpoint.insert("state_dict", toDict(stateDict(network)));
    writeTorchSaveFile(path, checkpoint);
}

LoadedModel loadCheckpoint(const std::filesystem::path& path) {
    const std::string name = path.string();
    const c10::IValue loaded = readTorchSaveFile(path);
    const auto notACheckpoint = [&](const std::string& why) {
        return core::InputError(name + ": not a liverseg checkpoint (" + why + ")");
    };
    if (!loaded.isGenericDict()) throw notACheckpoint(std::string("it holds a ") + loaded.tagKind());
    const auto dict = loaded.toGenericDict();
    const auto format = entry(dict, "format");
    if (!format || !format->isString() || format->toStringRef() != kCheckpointFormat) {
        if (allTensors(dict)) {
            throw notACheckpoint("it is a plain PyTorch state_dict; make a checkpoint of it with `liverseg model import`");
        }
        throw notACheckpoint("no 'format': 'liverseg-checkpoint' entry");
    }
    const auto version = entry(dict, "version");
    if (!version || !version->isInt()) throw core::InputError(name + ": liverseg checkpoint without a version");
    if (version->toInt() != kCheckpointVersion) {
        throw core::InputError(name + ": liverseg checkpoint version " + std::to_string(version->toInt()) +
                               "; this build reads version " + std::to_string(kCheckpointVersion));
    }
    const auto metadata = entry(dict, "metadata");
    const auto weights = entry(dict, "state_dict");
    if (!metadata || !metadata->isString()) throw core::InputError(name + ": liverseg checkpoint without metadata");
    if (!weights) throw core::InputError(name + ": liverseg checkpoint without a state_dict");
    LoadedModel model;
    try {
        model.info = checkpointInfoFromJsonText(metadata->toStringRef());
    } catch (const core::InputError& error) {
        throw core::InputError(name + ": " + error.what());
    }
    model.network = networkFromStateDict(model.info.config, tensorDict(*weights, name + " state_dict"), name);
    return model;
}

torch::Tensor readTensorFile(const std::filesystem::path& path) {
    const c10::IValue loaded = readTorchSaveFile(path);
    if (!loaded.isTensor()) throw core::InputError(path.string() + ": holds a " + loaded.tagKind() + ", not a tensor");
    return loaded.toTensor();
}

void writeTensorFile(const std::filesystem::path& path, const torch::Tensor& tensor) {
    writeTorchSaveFile(path, tensor.detach().to(torch::kCPU).contiguous());
}

}  // namespace liverseg::nn

#include "tests/nn/NnTestSupport.h"

#include "nn/Checkpoint.h"

#include <QProcess>
#include <QStringList>

#include <cmath>
#include <fstream>
#include <sstream>

namespace liverseg::test {

void randomizeForParity(torch::nn::Module& module, std::uint64_t seed) {
    torch::NoGradGuard noGrad;
    torch::manual_seed(seed);
    for (const auto& child : module.modules()) {
        if (auto* norm = dynamic_cast<torch::nn::BatchNorm2dImpl*>(child.get())) {
            norm->weight.copy_(0.5 + torch::rand_like(norm->weight));
            norm->bias.copy_(0.2 * torch::randn_like(norm->bias));
            norm->running_mean.copy_(0.3 * torch::randn_like(norm->running_mean));
            norm->running_var.copy_(0.5 + torch::rand_like(norm->running_var));
            norm->num_batches_tracked.fill_(7);
        } else if (auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(child.get())) {
            const double fanIn = double(conv->weight[0].numel());
            conv->weight.copy_(torch::randn_like(conv->weight) * std::sqrt(2.0 / fanIn));
            if (conv->bias.defined()) conv->bias.copy_(0.1 * torch::randn_like(conv->bias));
        } else if (auto* transposed = dynamic_cast<torch::nn::ConvTranspose2dImpl*>(child.get())) {
            const double fanIn = double(transposed->weight[0].numel());
            transposed->weight.copy_(torch::randn_like(transposed->weight) * std::sqrt(2.0 / fanIn));
            transposed->bias.copy_(0.1 * torch::randn_like(transposed->bias));
        }
    }
}

std::vector<SeedTensor> seedStateDict(const std::string& architecture) {
    std::ifstream in(std::string(LIVERSEG_SOURCE_DIR) + "/tests/nn/reference/seed_" + architecture + "_state_dict.tsv");
    std::vector<SeedTensor> rows;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        SeedTensor row;
        std::getline(fields, row.name, '\t');
        std::getline(fields, row.shape, '\t');
        std::getline(fields, row.dtype, '\t');
        rows.push_back(row);
    }
    return rows;
}

std::vector<SeedTensor> describeStateDict(const torch::nn::Module& module) {
    std::vector<SeedTensor> rows;
    for (const auto& item : nn::stateDict(module)) {
        std::string shape;
        for (const auto size : item.value().sizes()) shape += (shape.empty() ? "" : "x") + std::to_string(size);
        const auto type = item.value().scalar_type();
        rows.push_back({item.key(), shape.empty() ? "scalar" : shape,
                        type == torch::kFloat ? "float32" : type == torch::kLong ? "int64" : c10::toString(type)});
    }
    return rows;
}

std::optional<QString> pythonWithTorch() {
    static const std::optional<QString> found = []() -> std::optional<QString> {
        QStringList candidates;
        if (const char* chosen = std::getenv("LIVERSEG_PYTHON")) {
            candidates << QString::fromUtf8(chosen);  // an explicit choice is the only one tried
        } else {
            candidates << "python3" << "/usr/bin/python3";
        }
        for (const QString& candidate : candidates) {
            QProcess process;
            process.start(candidate, {"-c", "import torch"});
            if (process.waitForStarted(5000) && process.waitForFinished(60000) &&
                process.exitStatus() == QProcess::NormalExit && process.exitCode() == 0) {
                return candidate;
            }
        }
        return std::nullopt;
    }();
    return found;
}

bool runReference(const nlohmann::json& jobs, const std::filesystem::path& folder, QString* error) {
    const std::filesystem::path jobFile = folder / "jobs.json";
    std::ofstream(jobFile) << jobs.dump(1);
    QProcess process;
    process.start(*pythonWithTorch(),
                  {QString::fromUtf8(LIVERSEG_SOURCE_DIR "/tests/nn/reference/seed_networks.py"),
                   QString::fromStdString(jobFile.string())});
    const bool finished = process.waitForStarted(10000) && process.waitForFinished(300000);
    if (finished && process.exitStatus() == QProcess::NormalExit && process.exitCode() == 0) return true;
    *error = "the Python reference failed: " + QString::fromUtf8(process.readAllStandardError());
    return false;
}

double maxAbsDifference(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace liverseg::test

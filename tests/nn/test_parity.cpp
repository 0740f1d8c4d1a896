// Parity with PyTorch: the same weights (random, with non-trivial BatchNorm statistics) in
// our networks and in an independent Python reference written from the seed's text
// (tests/nn/reference/seed_networks.py) give logits within 1e-4, both ways round: our
// state_dict files and checkpoints run in Python, Python's torch.save'd state_dicts run here.
// Skips when no python3 with torch is found (LIVERSEG_PYTHON chooses one).
#include "nn/Checkpoint.h"
#include "nn/TorchSaveFile.h"
#include "tests/nn/NnTestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

using namespace liverseg;

namespace {

constexpr double kTolerance = 1e-4;
constexpr const char* kNoPython = "no python3 with torch (set LIVERSEG_PYTHON); parity not checked";

struct Case {
    std::string name;
    nn::ModelConfig config;
    std::vector<std::int64_t> inputShape;
};

nn::ModelConfig config(nn::Architecture architecture, int width, nn::UNetPadding padding = nn::UNetPadding::Same,
                       nn::UNet3PlusVariant variant = nn::UNet3PlusVariant::Plain) {
    nn::ModelConfig c;
    c.architecture = architecture;
    c.baseWidth = width;
    c.padding = padding;
    c.variant = variant;
    return c;
}

nlohmann::json job(const char* kind, const nn::ModelConfig& c, const std::filesystem::path& weights,
                   const std::filesystem::path& input, const std::filesystem::path& output) {
    return {{"kind", kind},
            {"arch", nn::toString(c.architecture)},
            {"width", c.baseWidth},
            {"in_channels", c.inputChannels},
            {"out_channels", c.outputChannels},
            {"padding", nn::toString(c.padding)},
            {"variant", nn::toString(c.variant)},
            {"weights", weights.string()},
            {"input", input.string()},
            {"output", output.string()},
            {"seed", 11}};
}

// Every output of ours in the reference's order: logits, auxiliary heads, class probabilities.
std::vector<torch::Tensor> flatten(const nn::NetworkOutputs& outputs) {
    std::vector<torch::Tensor> all{outputs.logits};
    all.insert(all.end(), outputs.auxiliaryLogits.begin(), outputs.auxiliaryLogits.end());
    if (outputs.classProbabilities.defined()) all.push_back(outputs.classProbabilities);
    return all;
}

std::vector<torch::Tensor> readOutputs(const std::filesystem::path& path) {
    std::vector<torch::Tensor> tensors;
    for (const auto& item : nn::readTorchSaveFile(path).toList()) tensors.push_back(item.get().toTensor());
    return tensors;
}

// Shifts the CGM classifier's organ bias so that about half the batch is judged "organ",
// so the comparison covers both sides of the gate.
void splitClassifierDecisions(nn::SegmentationNetworkImpl& network, const torch::Tensor& input) {
    nn::StateDict weights = nn::stateDict(network);
    torch::NoGradGuard noGrad;
    weights["cls.1.weight"].mul_(0.01);  // keep the sigmoid away from saturation
    weights["cls.1.bias"].zero_();
    const torch::Tensor p = network.forwardAll(input).classProbabilities.to(torch::kDouble);
    const torch::Tensor margin = torch::logit(p.select(1, 1)) - torch::logit(p.select(1, 0));
    const torch::Tensor sorted = std::get<0>(margin.sort());
    const double median = sorted[margin.size(0) / 2].item<double>();
    const double lowerMedian = sorted[margin.size(0) / 2 - 1].item<double>();
    weights["cls.1.bias"][1].fill_(-(median + lowerMedian) / 2);
}

}  // namespace

class ParityTest : public QObject {
    Q_OBJECT
private:
    QTemporaryDir folder_;
    std::filesystem::path file(const std::string& name) const {
        return std::filesystem::path(folder_.path().toStdString()) / name;
    }

    // Compares every output; reports the largest difference and the logits' spread, which
    // must be large enough for the comparison to mean something.
    void compare(const std::string& name, const std::vector<torch::Tensor>& ours, const std::vector<torch::Tensor>& theirs) {
        QCOMPARE(theirs.size(), ours.size());
        double worst = 0;
        for (std::size_t i = 0; i < ours.size(); ++i) {
            QCOMPARE(theirs[i].sizes().vec(), ours[i].sizes().vec());
            worst = std::max(worst, test::maxAbsDifference(ours[i], theirs[i]));
        }
        const torch::Tensor live = ours[0].masked_select(ours[0] != nn::kNoOrganLogit);
        const double spread = live.numel() > 1 ? live.std().item<double>() : 0.0;
        qInfo("%-22s outputs %zu  logits %s  std %.3f  max|diff| %.3g", name.c_str(), ours.size(),
              c10::str(ours[0].sizes()).c_str(), spread, worst);
        QVERIFY2(worst <= kTolerance, qPrintable(QString::fromStdString(name) + ": max |diff| " + QString::number(worst)));
        QVERIFY2(spread > 0.05, "the logits are nearly constant: the comparison would prove little");
    }

private Q_SLOTS:
    void initTestCase() { QVERIFY(folder_.isValid()); }

    void ourWeightsGiveTheSameLogitsInPython() {
        if (!test::pythonWithTorch()) QSKIP(kNoPython);
        const std::vector<Case> cases = {
            {"unet same", config(nn::Architecture::UNet, 4), {2, 3, 45, 61}},
            {"unet seed", config(nn::Architecture::UNet, 4, nn::UNetPadding::Seed), {2, 3, 148, 156}},
            {"unet3plus plain", config(nn::Architecture::UNet3Plus, 4), {2, 3, 48, 64}},
            {"unet3plus deepsup",
             config(nn::Architecture::UNet3Plus, 4, nn::UNetPadding::Same, nn::UNet3PlusVariant::DeepSupervision),
             {2, 3, 48, 64}},
            {"unet3plus cgm",
             config(nn::Architecture::UNet3Plus, 4, nn::UNetPadding::Same, nn::UNet3PlusVariant::ClassificationGuided),
             {4, 3, 48, 64}},
        };
        nlohmann::json jobs = nlohmann::json::array();
        std::vector<std::vector<torch::Tensor>> ours;
        for (std::size_t i = 0; i < cases.size(); ++i) {
            const Case& c = cases[i];
            const std::string tag = std::to_string(i);
            const nn::SegmentationNetwork network = nn::makeNetwork(c.config);
            test::randomizeForParity(*network, 100 + i);
            network->eval();
            torch::manual_seed(200 + i);
            const torch::Tensor input = torch::rand(c.inputShape) * 2 - 0.5;
            if (c.config.variant == nn::UNet3PlusVariant::ClassificationGuided) {
                splitClassifierDecisions(*network, input);
            }
            torch::NoGradGuard noGrad;
            const nn::NetworkOutputs outputs = network->forwardAll(input);
            if (outputs.classProbabilities.defined()) {
                const std::int64_t organs = outputs.classProbabilities.argmax(1).sum().item<std::int64_t>();
                QVERIFY2(organs > 0 && organs < input.size(0), "the CGM test batch should hold both decisions");
            }
            ours.push_back(flatten(outputs));
            nn::writeStateDictFile(file("w" + tag + ".pth"), nn::stateDict(*network));
            nn::writeTensorFile(file("x" + tag + ".pt"), input);
            jobs.push_back(job("forward", c.config, file("w" + tag + ".pth"), file("x" + tag + ".pt"), file("y" + tag + ".pt")));
        }
        QString error;
        QVERIFY2(test::runReference(jobs, folder_.path().toStdString(), &error), qPrintable(error));
        for (std::size_t i = 0; i < cases.size(); ++i) {
            compare(cases[i].name, ours[i], readOutputs(file("y" + std::to_string(i) + ".pt")));
        }
    }

    void pythonStateDictsRunHere() {
        if (!test::pythonWithTorch()) QSKIP(kNoPython);
        // torch.save(model.state_dict()) from Python: an OrderedDict with _metadata.
        const std::vector<Case> cases = {
            {"python unet seed", config(nn::Architecture::UNet, 4, nn::UNetPadding::Seed), {1, 3, 140, 150}},
            {"python unet3plus deepsup",
             config(nn::Architecture::UNet3Plus, 4, nn::UNetPadding::Same, nn::UNet3PlusVariant::DeepSupervision),
             {2, 3, 32, 48}},
        };
        nlohmann::json jobs = nlohmann::json::array();
        for (std::size_t i = 0; i < cases.size(); ++i) {
            const std::string tag = "p" + std::to_string(i);
            torch::manual_seed(300 + i);
            nn::writeTensorFile(file("x" + tag + ".pt"), torch::rand(cases[i].inputShape));
            jobs.push_back(job("create", cases[i].config, file("w" + tag + ".pth"), file("x" + tag + ".pt"),
                               file("y" + tag + ".pt")));
        }
        QString error;
        QVERIFY2(test::runReference(jobs, folder_.path().toStdString(), &error), qPrintable(error));
        for (std::size_t i = 0; i < cases.size(); ++i) {
            const std::string tag = "p" + std::to_string(i);
            const nn::SegmentationNetwork network =
                nn::networkFromStateDict(cases[i].config, nn::readStateDictFile(file("w" + tag + ".pth")), tag);
            torch::NoGradGuard noGrad;
            compare(cases[i].name, flatten(network->forwardAll(nn::readTensorFile(file("x" + tag + ".pt")))),
                    readOutputs(file("y" + tag + ".pt")));
        }
    }

    void checkpointsLoadInPython() {
        if (!test::pythonWithTorch()) QSKIP(kNoPython);
        nn::CheckpointInfo info;
        info.config = config(nn::Architecture::UNet, 4);
        const nn::SegmentationNetwork network = nn::makeNetwork(info.config);
        test::randomizeForParity(*network, 400);
        network->eval();
        nn::saveCheckpoint(file("model.pt"), info, *network);
        torch::manual_seed(401);
        const torch::Tensor input = torch::rand({1, 3, 64, 40});
        nn::writeTensorFile(file("xc.pt"), input);
        QString error;
        QVERIFY2(test::runReference(nlohmann::json::array({job("forward", info.config, file("model.pt"), file("xc.pt"),
                                                               file("yc.pt"))}),
                                    folder_.path().toStdString(), &error),
                 qPrintable(error));
        torch::NoGradGuard noGrad;
        compare("checkpoint unet", flatten(network->forwardAll(input)), readOutputs(file("yc.pt")));
    }

    // The reference itself is checked against the seed's state_dict tables at width 64, so
    // matching it means matching the seed.
    void referenceHasTheSeedsKeysAndCounts() {
        if (!test::pythonWithTorch()) QSKIP(kNoPython);
        nlohmann::json jobs = nlohmann::json::array();
        for (const auto architecture : {nn::Architecture::UNet, nn::Architecture::UNet3Plus}) {
            jobs.push_back(job("keys", config(architecture, 64), "", "", file("keys_" + nn::toString(architecture) + ".tsv")));
        }
        QString error;
        QVERIFY2(test::runReference(jobs, folder_.path().toStdString(), &error), qPrintable(error));
        for (const auto& [architecture, count] : {std::pair<std::string, std::string>{"unet", "31037633"},
                                                  std::pair<std::string, std::string>{"unet3plus", "26967809"}}) {
            std::ifstream in(file("keys_" + architecture + ".tsv"));
            std::string header;
            std::getline(in, header);
            QCOMPARE(header, "# parameters\t" + count);
            std::size_t row = 0;
            const auto expected = test::seedStateDict(architecture);
            for (std::string line; std::getline(in, line); ++row) {
                QVERIFY(row < expected.size());
                const auto& e = expected[row];
                QCOMPARE(line, e.name + "\t" + e.shape + "\t" + e.dtype);
            }
            QCOMPARE(row, expected.size());
        }
    }
};

QTEST_GUILESS_MAIN(ParityTest)
#include "test_parity.moc"

// Checkpoints and state_dict files: bit-exact round trips, and a clear core::InputError for
// every way a file can be wrong.
#include "core/Errors.h"
#include "nn/Checkpoint.h"
#include "nn/TorchSaveFile.h"
#include "tests/nn/NnTestSupport.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

using namespace liverseg;

namespace {

nn::CheckpointInfo smallInfo() {
    nn::CheckpointInfo info;
    info.config.architecture = nn::Architecture::UNet3Plus;
    info.config.baseWidth = 4;
    info.config.variant = nn::UNet3PlusVariant::DeepSupervision;
    info.preprocessing.windowLowHu = -150;
    info.preprocessing.windowHighHu = 250;
    info.preprocessing.pixelSpacingMm = 0.77;
    info.training.data = "phantoms";
    info.training.epochs = 3;
    info.training.validationDice = 0.5;
    info.training.date = "2024-01-02T03:04:05Z";
    return info;
}

nn::SegmentationNetwork randomNetwork(const nn::ModelConfig& config, std::uint64_t seed) {
    const nn::SegmentationNetwork network = nn::makeNetwork(config);
    test::randomizeForParity(*network, seed);
    return network;
}

bool sameWeights(const nn::StateDict& a, const nn::StateDict& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto& x = a[i];
        const auto& y = b[i];
        if (x.key() != y.key() || x.value().scalar_type() != y.value().scalar_type() ||
            !torch::equal(x.value(), y.value())) {
            return false;
        }
    }
    return true;
}

// The message of the core::InputError that `action` throws ("" if none).
template <typename Action>
QString inputError(Action action) {
    try {
        action();
    } catch (const core::InputError& error) {
        return QString::fromUtf8(error.what());
    }
    return {};
}

}  // namespace

class CheckpointTest : public QObject {
    Q_OBJECT
private:
    QTemporaryDir folder_;
    std::filesystem::path file(const char* name) const { return std::filesystem::path(folder_.path().toStdString()) / name; }

    // A valid checkpoint on disk, rewritten with one change to its top-level dict.
    std::filesystem::path alteredCheckpoint(const char* name, const std::function<void(c10::impl::GenericDict&)>& alter) {
        const auto original = file("original.pt");
        nn::saveCheckpoint(original, smallInfo(), *randomNetwork(smallInfo().config, 1));
        c10::impl::GenericDict dict = nn::readTorchSaveFile(original).toGenericDict();
        alter(dict);
        nn::writeTorchSaveFile(file(name), dict);
        return file(name);
    }

private Q_SLOTS:
    void initTestCase() { QVERIFY(folder_.isValid()); }

    void checkpointRoundTripIsBitExact() {
        const nn::CheckpointInfo info = smallInfo();
        const nn::SegmentationNetwork network = randomNetwork(info.config, 7);
        nn::saveCheckpoint(file("model.pt"), info, *network);
        const nn::LoadedModel loaded = nn::loadCheckpoint(file("model.pt"));
        QVERIFY(loaded.info == info);
        QVERIFY(sameWeights(nn::stateDict(*loaded.network), nn::stateDict(*network)));
        QVERIFY(!loaded.network->is_training());
        QCOMPARE(nn::stateDict(*loaded.network)["dconv.double_conv.1.num_batches_tracked"].item<std::int64_t>(),
                 std::int64_t(7));
        // Saving what was loaded gives the same bytes.
        nn::saveCheckpoint(file("again.pt"), loaded.info, *loaded.network);
        QVERIFY(test::readBytes(file("again.pt")) == test::readBytes(file("model.pt")));
    }

    void stateDictFileRoundTripKeepsNamesOrderAndBits() {
        nn::ModelConfig config;
        config.baseWidth = 4;
        config.padding = nn::UNetPadding::Seed;
        const nn::StateDict weights = nn::stateDict(*randomNetwork(config, 3));
        nn::writeStateDictFile(file("weights.pth"), weights);
        QVERIFY(sameWeights(nn::readStateDictFile(file("weights.pth")), weights));
        QVERIFY(sameWeights(nn::stateDict(*nn::networkFromStateDict(config, weights, "test")), weights));
    }

    void tensorFilesKeepViewsAndDtypes() {
        const torch::Tensor base = torch::arange(24, torch::kDouble).reshape({2, 3, 4});
        nn::writeTensorFile(file("tensor.pt"), base.transpose(1, 2));  // non-contiguous in
        const torch::Tensor back = nn::readTensorFile(file("tensor.pt"));
        QCOMPARE(back.scalar_type(), torch::kDouble);
        QVERIFY(torch::equal(back, base.transpose(1, 2)));
        nn::writeTensorFile(file("half.pt"), torch::full({3}, 1.5, torch::kHalf));
        QVERIFY(torch::equal(nn::readTensorFile(file("half.pt")), torch::full({3}, 1.5, torch::kHalf)));
    }

    void dataParallelPrefixIsDropped() {
        nn::ModelConfig config;
        config.baseWidth = 2;
        const nn::StateDict weights = nn::stateDict(*randomNetwork(config, 4));
        nn::StateDict prefixed;
        for (const auto& item : weights) prefixed.insert("module." + item.key(), item.value());
        QVERIFY(sameWeights(nn::stateDict(*nn::networkFromStateDict(config, prefixed, "test")), weights));
    }

    void unreadableFilesAreInputErrors() {
        QVERIFY(inputError([&] { nn::loadCheckpoint(file("absent.pt")); }).contains("no such file"));
        QVERIFY(inputError([&] { nn::loadCheckpoint(folder_.path().toStdString()); }).contains("is a folder"));
        test::writeBytes(file("empty.pt"), "");
        QVERIFY(inputError([&] { nn::loadCheckpoint(file("empty.pt")); }).contains("not a torch.save file"));
        std::string noise(4096, '\0');
        for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = char((i * 7919 + 13) % 251);
        test::writeBytes(file("noise.pt"), noise);
        QVERIFY(inputError([&] { nn::loadCheckpoint(file("noise.pt")); }).contains("not a torch.save file"));
        test::writeBytes(file("legacy.pt"), std::string("\x80\x02\x8a\x0a", 4) + noise);
        QVERIFY(inputError([&] { nn::readStateDictFile(file("legacy.pt")); }).contains("legacy"));
    }

    void truncatedAndCorruptCheckpoints() {
        nn::saveCheckpoint(file("whole.pt"), smallInfo(), *randomNetwork(smallInfo().config, 2));
        const std::string bytes = test::readBytes(file("whole.pt"));
        for (const double fraction : {0.1, 0.5, 0.99}) {
            test::writeBytes(file("cut.pt"), bytes.substr(0, std::size_t(double(bytes.size()) * fraction)));
            const QString message = inputError([&] { nn::loadCheckpoint(file("cut.pt")); });
            QVERIFY2(message.contains("cut.pt") && message.contains("corrupt or truncated"), qPrintable(message));
        }
        // One flipped byte inside the stored weights: the zip's CRC catches it.
        std::string flipped = bytes;
        flipped[bytes.size() / 2] = char(flipped[bytes.size() / 2] ^ 0x5a);
        test::writeBytes(file("flipped.pt"), flipped);
        const QString message = inputError([&] { nn::loadCheckpoint(file("flipped.pt")); });
        QVERIFY2(message.contains("fails its checksum: the file is corrupt"), qPrintable(message));
    }

    void notACheckpoint() {
        nn::writeStateDictFile(file("plain.pth"), nn::stateDict(*randomNetwork(smallInfo().config, 1)));
        QVERIFY(inputError([&] { nn::loadCheckpoint(file("plain.pth")); }).contains("liverseg model import"));
        nn::writeTensorFile(file("tensor.pt"), torch::zeros({2}));
        QVERIFY(inputError([&] { nn::loadCheckpoint(file("tensor.pt")); }).contains("not a liverseg checkpoint"));
        nn::saveCheckpoint(file("real.pt"), smallInfo(), *randomNetwork(smallInfo().config, 1));
        QVERIFY(inputError([&] { nn::readStateDictFile(file("real.pt")); }).contains("is a liverseg checkpoint"));
        QVERIFY(inputError([&] { nn::readTensorFile(file("real.pt")); }).contains("not a tensor"));
    }

    void wrongFormatVersionOrMetadata() {
        auto path = alteredCheckpoint("format.pt", [](auto& d) { d.insert_or_assign("format", std::string("other")); });
        QVERIFY(inputError([&] { nn::loadCheckpoint(path); }).contains("no 'format': 'liverseg-checkpoint'"));
        path = alteredCheckpoint("version.pt", [](auto& d) { d.insert_or_assign("version", std::int64_t(2)); });
        QVERIFY(inputError([&] { nn::loadCheckpoint(path); }).contains("version 2; this build reads version 1"));
        path = alteredCheckpoint("metadata.pt", [](auto& d) { d.insert_or_assign("metadata", std::string("{oops")); });
        QVERIFY(inputError([&] { nn::loadCheckpoint(path); }).contains("not valid JSON"));
        path = alteredCheckpoint("arch.pt", [](auto& d) {
            d.insert_or_assign("metadata", std::string(R"({"model": {"architecture": "resnet"}})"));
        });
        QVERIFY(inputError([&] { nn::loadCheckpoint(path); }).contains("'resnet' is not one of"));
    }

    void weightsThatDoNotFitNameTheFirstOffender() {
        const auto withWeights = [&](const char* name, const std::function<void(c10::Dict<std::string, at::Tensor>&)>& alter) {
            return alteredCheckpoint(name, [&](c10::impl::GenericDict& d) {
                c10::Dict<std::string, at::Tensor> weights;
                for (const auto& item : d.at("state_dict").toGenericDict()) {
                    weights.insert(item.key().toStringRef(), item.value().toTensor());
                }
                alter(weights);
                d.insert_or_assign("state_dict", weights);
            });
        };
        auto path = withWeights("missing.pt", [](auto& w) { QVERIFY(w.erase("de2_Conv_BN_ReLU.conv_bn.1.running_var") == 1); });
        QString message = inputError([&] { nn::loadCheckpoint(path); });
        QVERIFY2(message.contains("missing 'de2_Conv_BN_ReLU.conv_bn.1.running_var'"), qPrintable(message));
        path = withWeights("extra.pt", [](auto& w) { w.insert("outconv9.weight", torch::zeros({1})); });
        message = inputError([&] { nn::loadCheckpoint(path); });
        QVERIFY2(message.contains("unexpected 'outconv9.weight'"), qPrintable(message));
        path = withWeights("shape.pt", [](auto& w) { w.insert_or_assign("outconv1.weight", torch::zeros({1, 20, 1, 1})); });
        message = inputError([&] { nn::loadCheckpoint(path); });
        QVERIFY2(message.contains("'outconv1.weight' has shape [1, 20, 1, 1]") && message.contains("expects [1, 20, 3, 3]"),
                 qPrintable(message));
        path = withWeights("dtype.pt", [](auto& w) { w.insert_or_assign("outconv1.bias", torch::zeros({1}, torch::kLong)); });
        QVERIFY(inputError([&] { nn::loadCheckpoint(path); }).contains("'outconv1.bias' is Long"));
    }

    void wrongArchitectureForAStateDict() {
        nn::ModelConfig unet;
        unet.baseWidth = 4;
        const nn::StateDict weights = nn::stateDict(*randomNetwork(unet, 1));
        nn::ModelConfig other = unet;
        other.architecture = nn::Architecture::UNet3Plus;
        QString message = inputError([&] { nn::networkFromStateDict(other, weights, "w.pth"); });
        QVERIFY2(message.startsWith("w.pth: the weights do not fit the unet3plus") && message.contains("more)"),
                 qPrintable(message));
        other = unet;
        other.baseWidth = 8;
        message = inputError([&] { nn::networkFromStateDict(other, weights, "w.pth"); });
        QVERIFY2(message.contains("'dconv.double_conv.0.weight' has shape [4, 3, 3, 3]"), qPrintable(message));
    }

    void writesAreAtomic() {
        nn::saveCheckpoint(file("kept.pt"), smallInfo(), *randomNetwork(smallInfo().config, 1));
        const std::string before = test::readBytes(file("kept.pt"));
        nn::CheckpointInfo invalid = smallInfo();
        invalid.preprocessing.sliceContext = 5;  // != input channels
        QVERIFY(!inputError([&] { nn::saveCheckpoint(file("kept.pt"), invalid, *randomNetwork(smallInfo().config, 2)); })
                     .isEmpty());
        QVERIFY(test::readBytes(file("kept.pt")) == before);
        QVERIFY(inputError([&] { nn::writeTensorFile(file("no/such/folder/x.pt"), torch::zeros({1})); })
                    .contains("does not exist"));
    }
};

QTEST_GUILESS_MAIN(CheckpointTest)
#include "test_checkpoint.moc"

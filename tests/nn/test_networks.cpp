// The networks: the seed's exact parameter counts and state_dict names, the input sizes each
// padding mode takes, the deep-supervision and CGM heads, deterministic initialisation,
// training-mode gradients, thread control, and the config's JSON form.
#include "core/Errors.h"
#include "nn/Checkpoint.h"
#include "nn/ModelConfig.h"
#include "nn/Networks.h"
#include "nn/Threads.h"
#include "tests/nn/NnTestSupport.h"

#include <QtTest>

#include <nlohmann/json.hpp>

using namespace liverseg;

namespace {

nn::ModelConfig configOf(nn::Architecture architecture, int width) {
    nn::ModelConfig config;
    config.architecture = architecture;
    config.baseWidth = width;
    return config;
}

nn::ModelConfig unet(int width, nn::UNetPadding padding = nn::UNetPadding::Same) {
    nn::ModelConfig config = configOf(nn::Architecture::UNet, width);
    config.padding = padding;
    return config;
}

nn::ModelConfig unet3plus(int width, nn::UNet3PlusVariant variant = nn::UNet3PlusVariant::Plain) {
    nn::ModelConfig config = configOf(nn::Architecture::UNet3Plus, width);
    config.variant = variant;
    return config;
}

std::vector<std::int64_t> forwardShape(const nn::ModelConfig& config, std::int64_t h, std::int64_t w) {
    torch::manual_seed(0);
    const nn::SegmentationNetwork network = nn::makeNetwork(config);
    network->eval();
    torch::NoGradGuard noGrad;
    return network->forward(torch::rand({2, config.inputChannels, h, w})).sizes().vec();
}

}  // namespace

class NetworksTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void seedParameterCounts() {
        QCOMPARE(nn::makeNetwork(unet(64))->parameterCount(), std::int64_t(31037633));
        QCOMPARE(nn::makeNetwork(unet(64, nn::UNetPadding::Seed))->parameterCount(), std::int64_t(31037633));
        QCOMPARE(nn::makeNetwork(unet3plus(64))->parameterCount(), std::int64_t(26967809));
    }

    void stateDictIsTheSeeds_data() {
        QTest::addColumn<int>("architecture");
        QTest::addColumn<QString>("table");
        QTest::newRow("unet") << int(nn::Architecture::UNet) << "unet";
        QTest::newRow("unet3plus") << int(nn::Architecture::UNet3Plus) << "unet3plus";
    }
    void stateDictIsTheSeeds() {
        QFETCH(int, architecture);
        QFETCH(QString, table);
        const auto expected = test::seedStateDict(table.toStdString());
        QVERIFY(expected.size() > 100);
        const auto ours = test::describeStateDict(*nn::makeNetwork(configOf(nn::Architecture(architecture), 64)));
        QCOMPARE(ours.size(), expected.size());
        for (std::size_t i = 0; i < ours.size(); ++i) {
            const QString where = QString("entry %1: %2").arg(i).arg(QString::fromStdString(expected[i].name));
            QVERIFY2(ours[i].name == expected[i].name, qPrintable(where + " vs ours " + QString::fromStdString(ours[i].name)));
            QVERIFY2(ours[i].shape == expected[i].shape, qPrintable(where + " shape " + QString::fromStdString(ours[i].shape)));
            QVERIFY2(ours[i].dtype == expected[i].dtype, qPrintable(where + " dtype " + QString::fromStdString(ours[i].dtype)));
        }
    }

    void sameAndSeedPaddingSizes() {
        // Same padding keeps any size >= 16, odd and non-square included.
        QCOMPARE(forwardShape(unet(2), 17, 33), (std::vector<std::int64_t>{2, 1, 17, 33}));
        QCOMPARE(forwardShape(unet(2), 16, 16), (std::vector<std::int64_t>{2, 1, 16, 16}));
        // The seed's unpadded convs: 256 -> 248, the smallest input is 140.
        QCOMPARE(forwardShape(unet(2, nn::UNetPadding::Seed), 256, 256), (std::vector<std::int64_t>{2, 1, 248, 248}));
        QCOMPARE(forwardShape(unet(2, nn::UNetPadding::Seed), 140, 141), (std::vector<std::int64_t>{2, 1, 132, 133}));
        QCOMPARE(nn::minimumInputSide(unet(2, nn::UNetPadding::Seed)), std::int64_t(140));
        QVERIFY_THROWS_EXCEPTION(core::InputError, forwardShape(unet(2, nn::UNetPadding::Seed), 139, 256));
        QVERIFY_THROWS_EXCEPTION(core::InputError, forwardShape(unet(2), 15, 64));
    }

    void unet3plusSizes() {
        QCOMPARE(forwardShape(unet3plus(2), 48, 80), (std::vector<std::int64_t>{2, 1, 48, 80}));
        QCOMPARE(nn::inputSideMultiple(unet3plus(2)), std::int64_t(16));
        try {
            forwardShape(unet3plus(2), 40, 48);
            QFAIL("a 40-pixel side was accepted");
        } catch (const core::InputError& error) {
            QVERIFY2(QString(error.what()).contains("multiple of 16"), error.what());
        }
    }

    void outputSizeAgreesWithTheNetworks() {
        for (const auto& config : {unet(2), unet(2, nn::UNetPadding::Seed), unet3plus(2)}) {
            for (const std::int64_t side : {144, 160, 173}) {
                if (side % nn::inputSideMultiple(config) != 0) continue;
                const nn::SpatialSize predicted = nn::outputSize(config, {side, side + 16});
                QCOMPARE(forwardShape(config, side, side + 16),
                         (std::vector<std::int64_t>{2, 1, predicted.height, predicted.width}));
            }
        }
    }

    void badInputTensorsAreInputErrors() {
        const nn::SegmentationNetwork network = nn::makeNetwork(unet(2));
        network->eval();
        torch::NoGradGuard noGrad;
        QVERIFY_THROWS_EXCEPTION(core::InputError, network->forward(torch::rand({1, 1, 32, 32})));
        QVERIFY_THROWS_EXCEPTION(core::InputError, network->forward(torch::rand({3, 32, 32})));
        QVERIFY_THROWS_EXCEPTION(core::InputError, network->forward(torch::ones({1, 3, 32, 32}, torch::kLong)));
        QVERIFY_THROWS_EXCEPTION(core::InputError, network->forward(torch::Tensor()));
    }

    void deepSupervisionHeads() {
        torch::manual_seed(1);
        const nn::SegmentationNetwork network = nn::makeNetwork(unet3plus(2, nn::UNet3PlusVariant::DeepSupervision));
        network->eval();
        torch::NoGradGuard noGrad;
        const torch::Tensor input = torch::rand({2, 3, 32, 48});
        const nn::NetworkOutputs outputs = network->forwardAll(input);
        QCOMPARE(outputs.auxiliaryLogits.size(), std::size_t(4));
        for (const auto& head : outputs.auxiliaryLogits) QCOMPARE(head.sizes().vec(), outputs.logits.sizes().vec());
        QVERIFY(!outputs.classProbabilities.defined());
        QVERIFY(torch::equal(network->forward(input), outputs.logits));
        // The heads differ from each other (distinct convs on distinct stages).
        QVERIFY(!torch::allclose(outputs.auxiliaryLogits[0], outputs.logits));
    }

    void classificationGuidedModuleGates_data() {
        QTest::addColumn<double>("organBias");
        QTest::newRow("organ") << 20.0;
        QTest::newRow("no organ") << -20.0;
    }
    void classificationGuidedModuleGates() {
        QFETCH(double, organBias);
        torch::manual_seed(2);
        const nn::SegmentationNetwork cgm = nn::makeNetwork(unet3plus(2, nn::UNet3PlusVariant::ClassificationGuided));
        cgm->eval();
        nn::StateDict weights = nn::stateDict(*cgm);
        {
            torch::NoGradGuard noGrad;
            weights["cls.1.weight"].zero_();
            weights["cls.1.bias"].copy_(torch::tensor({0.0, organBias}));
        }
        // The same weights without the classifier, ungated.
        nn::StateDict shared;
        for (const auto& item : weights) {
            if (item.key().rfind("cls.", 0) != 0) shared.insert(item.key(), item.value());
        }
        const nn::SegmentationNetwork deepsup =
            nn::networkFromStateDict(unet3plus(2, nn::UNet3PlusVariant::DeepSupervision), shared, "test");
        torch::NoGradGuard noGrad;
        const torch::Tensor input = torch::rand({2, 3, 32, 32});
        const nn::NetworkOutputs gated = cgm->forwardAll(input);
        const nn::NetworkOutputs plain = deepsup->forwardAll(input);
        QCOMPARE(gated.classProbabilities.sizes().vec(), (std::vector<std::int64_t>{2, 2}));
        if (organBias > 0) {
            QVERIFY(torch::equal(gated.logits, plain.logits));
            QVERIFY(torch::equal(gated.auxiliaryLogits[3], plain.auxiliaryLogits[3]));
        } else {
            QVERIFY(torch::all(gated.logits == nn::kNoOrganLogit).item<bool>());
            QVERIFY(torch::all(gated.auxiliaryLogits[0] == nn::kNoOrganLogit).item<bool>());
        }
    }

    void initialisationIsDeterministicPerSeed() {
        const auto weightsFor = [](std::uint64_t seed) {
            torch::manual_seed(seed);
            return nn::stateDict(*nn::makeNetwork(unet3plus(2)));
        };
        const nn::StateDict a = weightsFor(5), b = weightsFor(5), c = weightsFor(6);
        bool allEqual = true, anyDifferent = false;
        for (const auto& item : a) {
            allEqual = allEqual && torch::equal(item.value(), b[item.key()]);
            anyDifferent = anyDifferent || !torch::equal(item.value(), c[item.key()]);
        }
        QVERIFY(allEqual);
        QVERIFY(anyDifferent);
    }

    void trainingModeBackpropagates() {
        for (const auto& config : {unet(2, nn::UNetPadding::Seed), unet3plus(2, nn::UNet3PlusVariant::ClassificationGuided)}) {
            torch::manual_seed(4);
            const nn::SegmentationNetwork network = nn::makeNetwork(config);
            network->train();
            const std::int64_t side = std::max<std::int64_t>(nn::minimumInputSide(config), 32);
            const nn::NetworkOutputs outputs = network->forwardAll(torch::rand({2, 3, side, side}));
            torch::Tensor loss = outputs.logits.sigmoid().mean();
            for (const auto& head : outputs.auxiliaryLogits) loss = loss + head.sigmoid().mean();
            if (outputs.classProbabilities.defined()) loss = loss + outputs.classProbabilities.mean();
            loss.backward();
            const auto first = network->named_parameters()["dconv.double_conv.0.weight"];
            QVERIFY(first.grad().defined());
            QVERIFY(first.grad().abs().sum().item<double>() > 0);
            // Batch statistics were tracked.
            QCOMPARE(nn::stateDict(*network)["dconv.double_conv.1.num_batches_tracked"].item<std::int64_t>(), std::int64_t(1));
        }
    }

    void threadCount() {
        QVERIFY(nn::availableCores() >= 1);
        QCOMPARE(nn::setIntraOpThreads(1), 1);
        QCOMPARE(nn::intraOpThreads(), 1);
        QCOMPARE(nn::setIntraOpThreads(0), nn::availableCores());
    }

    void configJsonRoundTrip() {
        nn::CheckpointInfo info;
        info.config = unet3plus(16, nn::UNet3PlusVariant::ClassificationGuided);
        info.preprocessing.windowLowHu = -160;
        info.preprocessing.windowHighHu = 240;
        info.preprocessing.pixelSpacingMm = 0.8;
        info.preprocessing.inputSize = 320;
        info.training.data = "LiTS volumes 0-99";
        info.training.epochs = 11;
        info.training.validationDice = 0.953;
        info.training.parentCheckpoint = "base.pt";
        info.training.date = "2024-05-01T12:00:00Z";
        const nn::CheckpointInfo back = nn::checkpointInfoFromJsonText(nn::toJsonText(info));
        QVERIFY(back == info);
        QCOMPARE(nlohmann::json(info)["model"]["variant"].get<std::string>(), std::string("cgm"));
    }

    void configErrorsNameTheField() {
        const auto message = [](const std::string& text) -> QString {
            try {
                nn::checkpointInfoFromJsonText(text);
            } catch (const core::InputError& error) {
                return error.what();
            }
            return "accepted";
        };
        QVERIFY(message(R"({"model": {"architecture": "vnet"}})").contains("'vnet' is not one of unet, unet3plus"));
        QVERIFY(message(R"({"model": {"architecture": "unet", "base_width": "wide"}})").contains("base_width"));
        QVERIFY(message(R"({"model": {"architecture": "unet", "padding": "valid"}})").contains("padding 'valid'"));
        QVERIFY(message(R"({"preprocessing": {}})").contains("no 'model'"));
        QVERIFY(message(R"({"model": {"architecture": "unet"}, "preprocessing": {"hu_window": [300, 100]}})").contains("low < high"));
        QVERIFY(message(R"({"model": {"architecture": "unet", "input_channels": 5}})").contains("slice context"));
        QVERIFY(message("{not json").contains("not valid JSON"));
        QCOMPARE(message(R"({"model": {"architecture": "unet"}})"), QString("accepted"));
    }
};

QTEST_GUILESS_MAIN(NetworksTest)
#include "test_networks.moc"

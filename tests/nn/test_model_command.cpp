// `liverseg model` end to end through the built executable: describe, init, import,
// export, forward, and exit code 2 with one line for bad input.
#include "nn/Checkpoint.h"
#include "tests/nn/NnTestSupport.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>

using namespace liverseg;

namespace {

QString describeRun(const test::ProcessResult& result) {
    return QString("exit %1\nstdout: %2\nstderr: %3").arg(result.exitCode).arg(result.out, result.err);
}

bool sameWeights(const nn::StateDict& a, const nn::StateDict& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].key() != b[i].key() || !torch::equal(a[i].value(), b[i].value())) return false;
    }
    return true;
}

}  // namespace

class ModelCommandTest : public QObject {
    Q_OBJECT
private:
    QTemporaryDir folder_;
    QString path(const char* name) const { return folder_.filePath(name); }
    std::filesystem::path file(const char* name) const { return path(name).toStdString(); }

    test::ProcessResult run(const QStringList& arguments) {
        const test::ProcessResult result = test::runLiverseg(arguments);
        if (result.crashed) qWarning("liverseg crashed: %s", qPrintable(describeRun(result)));
        return result;
    }

    // Exit 2, one line on stderr containing `expected`, nothing on stdout, no crash.
    void expectInputError(const QStringList& arguments, const QString& expected) {
        const test::ProcessResult result = run(arguments);
        QVERIFY2(!result.crashed && result.exitCode == 2, qPrintable(describeRun(result)));
        QVERIFY2(result.err.trimmed().count('\n') == 0, qPrintable(describeRun(result)));
        QVERIFY2(result.err.contains(expected), qPrintable(describeRun(result)));
    }

    void expectSuccess(const QStringList& arguments) {
        const test::ProcessResult result = run(arguments);
        QVERIFY2(!result.crashed && result.exitCode == 0, qPrintable(describeRun(result)));
    }

private Q_SLOTS:
    void initTestCase() { QVERIFY(folder_.isValid()); }

    void helpForEverySubcommand() {
        for (const QString sub : {"describe", "init", "import", "export", "forward"}) {
            const test::ProcessResult result = run({"model", sub, "--help"});
            QVERIFY2(result.exitCode == 0 && result.out.startsWith("usage: liverseg model " + sub), qPrintable(describeRun(result)));
        }
        const test::ProcessResult top = run({"model", "--help"});
        QVERIFY(top.exitCode == 0 && top.out.contains("forward"));
    }

    void describeArchitectures() {
        test::ProcessResult result = run({"model", "describe", "--arch", "unet"});
        QVERIFY2(result.exitCode == 0 && result.out.contains("31,037,633"), qPrintable(describeRun(result)));
        result = run({"model", "describe", "--arch", "unet3plus", "--json"});
        QCOMPARE(result.exitCode, 0);
        const auto json = nlohmann::json::parse(result.out.toStdString());
        QCOMPARE(json["parameters"].get<std::int64_t>(), std::int64_t(26967809));
        QCOMPARE(json["state_dict_tensors"].get<int>(), 230);
        QCOMPARE(json["input"]["side_multiple"].get<int>(), 16);
        result = run({"model", "describe", "--arch", "unet", "--padding", "seed", "--width", "16"});
        QVERIFY2(result.out.contains("256 in -> 248 out") && result.out.contains("width 16"), qPrintable(describeRun(result)));
    }

    void initDescribeShowsEverything() {
        expectSuccess({"model", "init", "--arch", "unet3plus", "--width", "4", "--variant", "deepsup", "--seed", "9",
                       "--hu-window", "-150,250", "--spacing", "0.8", "--input-size", "320", "--data", "phantoms",
                       "--epochs", "2", "--dice", "0.91", "--parent", "base.pt", "--out", path("init.pt")});
        const test::ProcessResult result = run({"model", "describe", path("init.pt")});
        QVERIFY2(result.exitCode == 0, qPrintable(describeRun(result)));
        for (const QString expected : {"unet3plus (width 4, 3 -> 1 channels, deep supervision)", "-150 .. 250", "0.8 mm",
                                       "input size 320", "phantoms", "0.91", "base.pt", "random initialisation, seed 9"}) {
            QVERIFY2(result.out.contains(expected), qPrintable(expected + "\n" + describeRun(result)));
        }
        const nn::LoadedModel loaded = nn::loadCheckpoint(file("init.pt"));
        QCOMPARE(loaded.info.preprocessing.inputSize, 320);
        QVERIFY(loaded.info.training.validationDice && *loaded.info.training.validationDice == 0.91);
    }

    void initIsDeterministicPerSeed() {
        for (const char* name : {"a.pt", "b.pt"}) {
            expectSuccess({"model", "init", "--arch", "unet", "--width", "4", "--seed", "17", "--out", path(name)});
        }
        expectSuccess({"model", "init", "--arch", "unet", "--width", "4", "--seed", "18", "--out", path("c.pt")});
        const auto a = nn::stateDict(*nn::loadCheckpoint(file("a.pt")).network);
        QVERIFY(sameWeights(a, nn::stateDict(*nn::loadCheckpoint(file("b.pt")).network)));
        QVERIFY(!sameWeights(a, nn::stateDict(*nn::loadCheckpoint(file("c.pt")).network)));
    }

    void exportThenImportKeepsTheWeights() {
        expectSuccess({"model", "init", "--arch", "unet", "--width", "4", "--padding", "seed", "--out", path("orig.pt")});
        expectSuccess({"model", "export", path("orig.pt"), "--out", path("orig.pth")});
        const nn::StateDict exported = nn::readStateDictFile(file("orig.pth"));
        QCOMPARE(exported.size(), std::size_t(118));
        QCOMPARE(exported[0].key(), std::string("dconv.double_conv.0.weight"));
        expectSuccess({"model", "import", path("orig.pth"), "--arch", "unet", "--width", "4", "--padding", "seed",
                       "--out", path("back.pt")});
        const nn::LoadedModel back = nn::loadCheckpoint(file("back.pt"));
        QVERIFY(sameWeights(nn::stateDict(*back.network), nn::stateDict(*nn::loadCheckpoint(file("orig.pt")).network)));
        QVERIFY(back.info.config.padding == nn::UNetPadding::Seed);
        QVERIFY(QString::fromStdString(back.info.training.notes).contains("imported from"));
    }

    void forwardMatchesTheLibrary() {
        expectSuccess({"model", "init", "--arch", "unet3plus", "--width", "4", "--seed", "3", "--out", path("fwd.pt")});
        torch::manual_seed(5);
        const torch::Tensor input = torch::rand({2, 3, 32, 48});
        nn::writeTensorFile(file("x.pt"), input);
        const test::ProcessResult result = run({"model", "forward", path("fwd.pt"), "--input", path("x.pt"), "--output",
                                                path("y.pt"), "--threads", "1"});
        QVERIFY2(result.exitCode == 0 && result.out.contains("[2, 1, 32, 48]"), qPrintable(describeRun(result)));
        torch::NoGradGuard noGrad;
        const torch::Tensor expected = nn::loadCheckpoint(file("fwd.pt")).network->forward(input);
        QVERIFY(test::maxAbsDifference(nn::readTensorFile(file("y.pt")), expected) <= 1e-6);
        // A single (C, H, W) input gives (1, H, W) logits.
        nn::writeTensorFile(file("x3.pt"), input[1]);
        expectSuccess({"model", "forward", path("fwd.pt"), "--input", path("x3.pt"), "--output", path("y3.pt")});
        QVERIFY(test::maxAbsDifference(nn::readTensorFile(file("y3.pt")), expected[1]) <= 1e-5);
    }

    void badInputIsExitTwoWithOneLine() {
        expectSuccess({"model", "init", "--arch", "unet", "--width", "2", "--out", path("small.pt")});
        test::writeBytes(file("garbage.pt"), "this is not a checkpoint");
        expectInputError({"model"}, "a subcommand is needed");
        expectInputError({"model", "train"}, "unknown subcommand 'train'");
        expectInputError({"model", "describe", path("absent.pt")}, "no such file");
        expectInputError({"model", "describe", path("garbage.pt")}, "not a torch.save file");
        expectInputError({"model", "describe", "--arch", "vnet"}, "'vnet' is not one of unet, unet3plus");
        expectInputError({"model", "describe", "--arch", "unet3plus", "--padding", "seed"}, "--padding is for --arch unet");
        expectInputError({"model", "init", "--arch", "unet"}, "--out is required");
        expectInputError({"model", "init", "--arch", "unet", "--width", "0", "--out", path("z.pt")}, "--width");
        expectInputError({"model", "init", "--arch", "unet", "--hu-window", "200,100", "--out", path("z.pt")}, "low < high");
        expectInputError({"model", "init", "--arch", "unet", "--bogus", "--out", path("z.pt")}, "unknown option --bogus");
        expectInputError({"model", "init", "--arch", "unet", "--out", path("missing-folder/z.pt")}, "does not exist");
        expectInputError({"model", "import", path("small.pt"), "--arch", "unet", "--out", path("z.pt")},
                         "is a liverseg checkpoint");
        expectInputError({"model", "export", path("garbage.pt"), "--out", path("small.pth")}, "not a torch.save file");
        QVERIFY(!std::filesystem::exists(file("small.pth")));
    }

    void importRefusesWeightsOfAnotherArchitecture() {
        expectSuccess({"model", "init", "--arch", "unet", "--width", "2", "--out", path("u.pt")});
        expectSuccess({"model", "export", path("u.pt"), "--out", path("u.pth")});
        expectInputError({"model", "import", path("u.pth"), "--arch", "unet3plus", "--width", "2", "--out", path("z.pt")},
                         "the weights do not fit the unet3plus");
        expectInputError({"model", "import", path("u.pth"), "--arch", "unet", "--width", "4", "--out", path("z.pt")},
                         "'dconv.double_conv.0.weight' has shape [2, 3, 3, 3]");
        QVERIFY(!std::filesystem::exists(file("z.pt")));
    }

    void forwardRefusesBadTensors() {
        expectSuccess({"model", "init", "--arch", "unet", "--width", "2", "--out", path("f.pt")});
        nn::writeTensorFile(file("wrong_channels.pt"), torch::rand({1, 1, 32, 32}));
        nn::writeTensorFile(file("too_small.pt"), torch::rand({1, 3, 8, 8}));
        nn::writeTensorFile(file("integers.pt"), torch::ones({1, 3, 32, 32}, torch::kLong));
        expectInputError({"model", "forward", path("f.pt"), "--input", path("wrong_channels.pt"), "--output", path("o.pt")},
                         "takes a floating-point (N, 3, H, W) tensor");
        expectInputError({"model", "forward", path("f.pt"), "--input", path("too_small.pt"), "--output", path("o.pt")},
                         "each side must be at least 16");
        expectInputError({"model", "forward", path("f.pt"), "--input", path("integers.pt"), "--output", path("o.pt")},
                         "floating-point");
        expectInputError({"model", "forward", path("f.pt"), "--input", path("f.pt"), "--output", path("o.pt")}, "not a tensor");
        QVERIFY(!std::filesystem::exists(file("o.pt")));
    }
};

QTEST_GUILESS_MAIN(ModelCommandTest)
#include "test_model_command.moc"

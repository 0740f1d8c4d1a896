// The commands that use trained weights: `finetune` (edited slices, replay, frozen encoder,
// lineage, never overwriting its parent), `evaluate --weights --data` (the same numbers as
// predict + evaluate --pred) and `predict --model` (the bundled weights).
#include "core/DatasetPicture.h"
#include "core/ImageIO.h"
#include "nn/Checkpoint.h"
#include "tests/support/TestSupport.h"

#include <QElapsedTimer>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>

using namespace liverseg;
namespace fs = std::filesystem;

namespace {

QString path(const fs::path& p) { return QString::fromStdString(p.string()); }

// A tiny UNet checkpoint whose preprocessing fits 32 x 32 phantoms.
fs::path tinyCheckpoint(const fs::path& folder, const std::string& architecture, const std::string& name) {
    const fs::path out = folder / (name + ".pt");
    const test::ProcessResult result =
        test::runLiverseg({"model", "init", "--arch", QString::fromStdString(architecture), "--width", "4", "--input-size",
                           "32", "--spacing", "6", "--seed", "3", "--out", path(out)});
    if (result.exitCode != 0) qFatal("model init failed: %s", qPrintable(result.err));
    return out;
}

// Marks slice 2 of every case as edited: its prediction.nii.gz differs there (one voxel).
void writePredictions(const fs::path& store) {
    for (const auto& entry : fs::directory_iterator(store)) {
        core::LabelMap prediction = core::readLabelMap(entry.path() / "liver.nii.gz");
        std::uint8_t& voxel = prediction.at(0, 0, 2);
        voxel = voxel ? 0 : 1;
        core::writeLabelMap(prediction, entry.path() / "prediction.nii.gz");
    }
}

std::map<std::string, torch::Tensor> parameters(const fs::path& checkpoint) {
    std::map<std::string, torch::Tensor> named;
    for (const auto& item : nn::stateDict(*nn::loadCheckpoint(checkpoint).network)) named[item.key()] = item.value().clone();
    return named;
}

bool isEncoder(const std::string& name) { return name.rfind("dconv.", 0) == 0 || name.rfind("down", 0) == 0; }

nlohmann::json readJson(const fs::path& file) {
    std::ifstream in(file);
    return nlohmann::json::parse(in);
}

}  // namespace

class ModelCommandsTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void finetuneTrainsEditedSlicesNeighboursAndReplay() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "store", 1, 32, 6);
        writePredictions(root / "store");
        const fs::path parent = tinyCheckpoint(root, "unet", "parent");
        const std::string parentBytes = test::readBytes(parent);

        const fs::path child = root / "child.pt";
        const QStringList arguments = {"finetune", "--weights", path(parent), "--data", path(root / "store"), "--out",
                                       path(child), "--epochs", "2", "--batch", "2", "--threads", "1"};
        const test::ProcessResult result = test::runLiverseg(arguments);
        QVERIFY2(result.exitCode == 0, qPrintable(result.err));
        // Slice 2 edited; 0, 1, 3, 4 its neighbours; replay round(0.5 x 5) = 3 capped by the 1 left.
        QVERIFY2(result.err.contains("training on 6 slices of 1 case(s): 1 edited, 4 neighbours, 1 replay"), qPrintable(result.err));
        QVERIFY2(result.err.contains("Dice before: ") && result.out.contains("Dice before"), qPrintable(result.out));
        QVERIFY2(result.err.contains("the training case itself"), qPrintable(result.err));
        QCOMPARE(test::readBytes(parent), parentBytes);  // the parent is untouched

        const nn::LoadedModel model = nn::loadCheckpoint(child);
        QVERIFY(QString::fromStdString(model.info.training.parentCheckpoint).contains(path(fs::absolute(parent))));
        QVERIFY(QString::fromStdString(model.info.training.parentCheckpoint).contains("fnv1a64"));
        QCOMPARE(model.info.training.epochs, 2);
        QVERIFY(model.info.training.validationDice.has_value());
        QCOMPARE(model.info.preprocessing.inputSize, 32);

        // Never the parent, and an existing output only with --overwrite.
        QStringList ontoParent = arguments;
        ontoParent[ontoParent.indexOf("--out") + 1] = path(parent);
        const test::ProcessResult refused = test::runLiverseg(ontoParent << "--overwrite");
        QCOMPARE(refused.exitCode, 2);
        QVERIFY2(refused.err.contains("never overwrites its parent"), qPrintable(refused.err));
        QCOMPARE(test::readBytes(parent), parentBytes);
        const test::ProcessResult exists = test::runLiverseg(arguments);
        QCOMPARE(exists.exitCode, 2);
        QVERIFY2(exists.err.contains("--overwrite"), qPrintable(exists.err));

        // Without replay: the edited slice and its neighbours only.
        QStringList onlyEdited = arguments;
        onlyEdited[onlyEdited.indexOf("--out") + 1] = path(root / "only.pt");
        onlyEdited[onlyEdited.indexOf("--epochs") + 1] = "1";
        const test::ProcessResult only = test::runLiverseg(onlyEdited << "--only-edited-slices");
        QVERIFY2(only.exitCode == 0, qPrintable(only.err));
        QVERIFY2(only.err.contains("5 slices of 1 case(s): 1 edited, 4 neighbours, 0 replay"), qPrintable(only.err));

        // A case whose correction changed nothing gives one clear error, and no file.
        fs::copy_file(root / "store" / "phantom0" / "liver.nii.gz", root / "store" / "phantom0" / "prediction.nii.gz",
                      fs::copy_options::overwrite_existing);
        QStringList unedited = arguments;
        unedited[unedited.indexOf("--out") + 1] = path(root / "unedited.pt");
        const test::ProcessResult nothing = test::runLiverseg(unedited);
        QCOMPARE(nothing.exitCode, 2);
        QVERIFY2(nothing.err.contains("no edited slices"), qPrintable(nothing.err));
        QVERIFY(!fs::exists(root / "unedited.pt"));
    }

    void sigtermLeavesNothingBehind() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "store", 1, 32, 6);
        const fs::path parent = tinyCheckpoint(root, "unet", "parent");
        const fs::path child = root / "child.pt";
        QProcess process;
        process.start(QString::fromUtf8(LIVERSEG_BINARY),
                      {"finetune", "--weights", path(parent), "--data", path(root / "store"), "--out", path(child),
                       "--epochs", "100000", "--threads", "1"});
        QVERIFY(process.waitForStarted(10000));
        QString err;
        QElapsedTimer timer;
        timer.start();
        while (!err.contains("Dice before") && timer.elapsed() < 60000) {
            process.waitForReadyRead(500);
            err += QString::fromUtf8(process.readAllStandardError());
        }
        QVERIFY2(err.contains("Dice before"), qPrintable(err));
        process.terminate();
        QVERIFY(process.waitForFinished(60000));
        err += QString::fromUtf8(process.readAllStandardError());
        QCOMPARE(process.exitStatus(), QProcess::NormalExit);
        QCOMPARE(process.exitCode(), 143);
        QVERIFY2(err.contains("nothing was written"), qPrintable(err));
        QVERIFY(!fs::exists(child));
        for (const auto& entry : fs::directory_iterator(root)) {  // no temporary file left either
            QVERIFY2(entry.path().filename().string().find("child") == std::string::npos, entry.path().c_str());
        }
    }

    void freezeEncoderKeepsEveryEncoderTensorIncludingBatchNormStatistics() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "store", 2, 32, 4);
        const fs::path parent = tinyCheckpoint(root, "unet3plus", "parent");
        const fs::path child = root / "frozen.pt";
        const test::ProcessResult result =
            test::runLiverseg({"finetune", "--weights", path(parent), "--data", path(root / "store"), "--out", path(child),
                               "--epochs", "1", "--batch", "2", "--threads", "1", "--freeze-encoder", "--val-fraction", "0.5"});
        QVERIFY2(result.exitCode == 0, qPrintable(result.err));
        QVERIFY2(result.err.contains("encoder frozen") && result.err.contains("1 held-out case(s)"), qPrintable(result.err));

        const auto before = parameters(parent), after = parameters(child);
        std::size_t encoderTensors = 0, changedDecoderTensors = 0;
        for (const auto& [name, tensor] : before) {
            if (isEncoder(name)) {
                ++encoderTensors;
                QVERIFY2(torch::equal(tensor, after.at(name)), name.c_str());
            } else if (tensor.is_floating_point() && !torch::equal(tensor, after.at(name))) {
                ++changedDecoderTensors;
            }
        }
        QVERIFY(encoderTensors > 20);
        QVERIFY(changedDecoderTensors > 10);
    }

    void evaluateWithWeightsScoresAsPredictThenEvaluate() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "data", 2, 32, 5);
        const fs::path weights = tinyCheckpoint(root, "unet", "model");

        const test::ProcessResult scored = test::runLiverseg({"evaluate", "--weights", path(weights), "--data",
                                                              path(root / "data"), "--json", path(root / "scores.json"),
                                                              "--save-masks", path(root / "masks"), "--threads", "1"});
        QVERIFY2(scored.exitCode == 0, qPrintable(scored.err));
        const nlohmann::json scores = readJson(root / "scores.json");
        QCOMPARE(scores.at("cases").size(), std::size_t(2));

        for (const auto& item : scores.at("cases")) {
            const std::string id = item.at("case").get<std::string>();
            const fs::path mask = root / (id + ".predicted.nii.gz");
            const test::ProcessResult predicted = test::runLiverseg({"predict", "--weights", path(weights), "--input",
                                                                     path(root / "data" / id / "ct.nii.gz"), "--output",
                                                                     path(mask), "--threads", "1"});
            QVERIFY2(predicted.exitCode == 0, qPrintable(predicted.err));
            QCOMPARE(test::readBytes(mask).size() > 0, true);
            QVERIFY(core::readLabelMap(mask).voxels() == core::readLabelMap(root / "masks" / (id + ".nii.gz")).voxels());
            const test::ProcessResult single = test::runLiverseg({"evaluate", "--pred", path(mask), "--ref",
                                                                  path(root / "data" / id / "liver.nii.gz"), "--json",
                                                                  path(root / "single.json")});
            QVERIFY2(single.exitCode == 0, qPrintable(single.err));
            QCOMPARE(readJson(root / "single.json").at("cases")[0].at("dice").get<double>(), item.at("dice").get<double>());
        }

        const test::ProcessResult mixed =
            test::runLiverseg({"evaluate", "--weights", path(weights), "--pred", path(root / "masks")});
        QCOMPARE(mixed.exitCode, 2);
    }

    void evaluateWithWeightsScoresTwoDimensionalPictures() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        fs::create_directories(root / "pictures" / "images");
        fs::create_directories(root / "pictures" / "masks");
        for (const char* name : {"7_1.png", "7_2.png", "8_1.png"}) {
            core::Picture image{32, 32, 1, std::vector<std::uint8_t>(32 * 32, 40)};
            core::Picture mask{32, 32, 1, std::vector<std::uint8_t>(32 * 32, 0)};
            for (std::size_t y = 8; y < 20; ++y)
                for (std::size_t x = 6; x < 22; ++x) image.pixels[y * 32 + x] = 140, mask.pixels[y * 32 + x] = 255;
            core::writePng(image, root / "pictures" / "images" / name);
            core::writePng(mask, root / "pictures" / "masks" / name);
        }
        const fs::path weights = tinyCheckpoint(root, "unet", "model");
        const test::ProcessResult scored = test::runLiverseg({"evaluate", "--weights", path(weights), "--data",
                                                              path(root / "pictures"), "--json", path(root / "s.json"),
                                                              "--threads", "1"});
        QVERIFY2(scored.exitCode == 0, qPrintable(scored.err));
        const nlohmann::json scores = readJson(root / "s.json");
        QCOMPARE(scores.at("cases").size(), std::size_t(3));
        for (const auto& item : scores.at("cases")) {
            QVERIFY(item.at("hd95_mm").is_null());  // no surface in a single picture
            QVERIFY(item.at("dice").get<double>() >= 0 && item.at("dice").get<double>() <= 1);
            // The reference is the 12 x 16 square, read as in training.
            QCOMPARE(item.at("reference_ml").get<double>(), 12 * 16 * 6.0 * 6.0 * 1.0 / 1000.0);
        }
    }

    void bundledWeightsAreWhatTheirModelCardSays() {
        const fs::path folder = fs::path(LIVERSEG_SOURCE_DIR) / "assets" / "models";
        QVERIFY(fs::exists(folder / "MODEL_CARD.md"));
        std::uintmax_t bytes = 0;
        for (const std::string name : {"unet", "unet3plus"}) {
            const fs::path file = folder / (name + ".pt");
            QVERIFY2(fs::exists(file), file.c_str());
            bytes += fs::file_size(file);
            const nn::LoadedModel model = nn::loadCheckpoint(file);
            QCOMPARE(nn::toString(model.info.config.architecture), name);
            QCOMPARE(model.info.config.baseWidth, 16);
            QCOMPARE(model.info.preprocessing.windowLowHu, -10.0);
            QCOMPARE(model.info.preprocessing.windowHighHu, 150.0);
            QCOMPARE(model.info.preprocessing.pixelSpacingMm, 3.0);
            QCOMPARE(model.info.preprocessing.inputSize, 128);
            QVERIFY(QString::fromStdString(model.info.training.data).contains("liver2d"));
            QVERIFY(model.info.training.validationDice.has_value());
        }
        QVERIFY(bytes <= 40u * 1000u * 1000u);
    }

    void predictRunsTheBundledModelsByDefault() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "data", 1, 32, 4);
        tinyCheckpoint(root / "", "unet", "unet");
        tinyCheckpoint(root / "", "unet3plus", "unet3plus");
        const QString ct = path(root / "data" / "phantom0" / "ct.nii.gz");

        QProcess process;
        QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
        environment.insert("LIVERSEG_MODELS", path(root));
        process.setProcessEnvironment(environment);
        const auto run = [&](const QStringList& arguments) {
            process.start(QString::fromUtf8(LIVERSEG_BINARY), arguments);
            process.waitForFinished(120000);
            return std::make_pair(process.exitCode(), QString::fromUtf8(process.readAllStandardError()) +
                                                          QString::fromUtf8(process.readAllStandardOutput()));
        };
        const auto both = run({"predict", "--input", ct, "--output", path(root / "both.nii.gz"), "--threads", "1"});
        QVERIFY2(both.first == 0, qPrintable(both.second));
        QVERIFY(fs::exists(root / "both.nii.gz") && fs::exists(root / "both.2.nii.gz"));
        QVERIFY2(both.second.contains("agreement (Dice) between the two networks"), qPrintable(both.second));

        const auto one = run({"predict", "--model", "unet3plus", "--input", ct, "--output", path(root / "one.nii.gz")});
        QVERIFY2(one.first == 0, qPrintable(one.second));
        QVERIFY(fs::exists(root / "one.nii.gz") && !fs::exists(root / "one.2.nii.gz"));

        const auto bad = run({"predict", "--model", "resnet", "--input", ct, "--output", path(root / "x.nii.gz")});
        QCOMPARE(bad.first, 2);
        const auto both2 = run({"predict", "--model", "unet", "--weights", path(root / "unet.pt"), "--input", ct, "--output",
                                path(root / "x.nii.gz")});
        QCOMPARE(both2.first, 2);
    }
};

QTEST_MAIN(ModelCommandsTest)
#include "test_model_commands.moc"

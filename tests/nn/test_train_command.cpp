// `liverseg train` end to end: runs, JSON progress, 2D datasets, bad input, SIGTERM + resume.
#include "core/DatasetPicture.h"
#include "core/ImageIO.h"
#include "core/Phantom.h"
#include "nn/Checkpoint.h"
#include "tests/support/TestSupport.h"

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>
#include <memory>

using namespace liverseg;
namespace fs = std::filesystem;

namespace {

QString path(const fs::path& p) { return QString::fromStdString(p.string()); }

// Small, fast settings shared by the runs below.
QStringList tinyRun(const fs::path& data, const fs::path& out) {
    return {"train", "--data", path(data), "--arch", "unet", "--width", "4", "--size", "32", "--batch", "2",
            "--threads", "1", "--out", path(out)};
}

std::vector<nlohmann::json> jsonLines(const QString& text) {
    std::vector<nlohmann::json> lines;
    for (const QString& line : text.split('\n', Qt::SkipEmptyParts)) lines.push_back(nlohmann::json::parse(line.toStdString()));
    return lines;
}

// Starts `liverseg ARGUMENTS` as rank `rank` of `worldSize`, as torchrun would.
std::unique_ptr<QProcess> startRank(const QStringList& arguments, int rank, int worldSize, int port) {
    auto process = std::make_unique<QProcess>();
    QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
    environment.insert("WORLD_SIZE", QString::number(worldSize));
    environment.insert("RANK", QString::number(rank));
    environment.insert("LOCAL_RANK", QString::number(rank));
    environment.insert("LOCAL_WORLD_SIZE", QString::number(worldSize));
    environment.insert("MASTER_ADDR", "127.0.0.1");
    environment.insert("MASTER_PORT", QString::number(port));
    environment.insert("LIVERSEG_DIST_TIMEOUT", "60");
    process->setProcessEnvironment(environment);
    process->start(QString::fromUtf8(LIVERSEG_BINARY), arguments);
    return process;
}

// Every trained parameter of a checkpoint, flattened into one vector.
torch::Tensor flatParameters(const fs::path& checkpoint) {
    std::vector<torch::Tensor> parts;
    for (const auto& item : nn::loadCheckpoint(checkpoint).network->named_parameters()) {
        parts.push_back(item.value().detach().flatten().to(torch::kDouble));
    }
    return torch::cat(parts);
}

std::size_t rows(const fs::path& csv) {
    std::ifstream in(csv);
    std::size_t count = 0;
    for (std::string line; std::getline(in, line);) count += line.empty() ? 0 : 1;
    return count == 0 ? 0 : count - 1;
}

}  // namespace

class TrainCommandTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void trainsOnPhantomFoldersAndWritesTheRun() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "data", 3, 32, 4);
        QStringList arguments = tinyRun(root / "data", root / "run");
        arguments << "--epochs" << "2" << "--steps-per-epoch" << "2" << "--window" << "-150,250" << "--progress" << "json"
                  << "--augment" << "--loss" << "bce+dice";
        const test::ProcessResult result = test::runLiverseg(arguments);
        QVERIFY2(result.exitCode == 0 && !result.crashed, qPrintable(result.err));

        const auto lines = jsonLines(result.out);
        std::map<std::string, int> types;
        for (const auto& line : lines) types[line.at("type").get<std::string>()] += 1;
        QCOMPARE(types["cache"], 3);
        QCOMPARE(types["step"], 4);
        QCOMPARE(types["epoch"], 2);
        QCOMPARE(types["done"], 1);
        const auto epoch = std::find_if(lines.begin(), lines.end(), [](const auto& l) { return l.at("type") == "epoch"; });
        QCOMPARE(epoch->at("cases").size(), std::size_t(1));  // round(0.2 x 3) = 1 validation case
        QVERIFY(epoch->at("validation_dice").is_number());

        const fs::path run = root / "run";
        for (const char* file : {"best.pt", "last.pt", "resume.pt", "steps.csv", "epochs.csv", "validation.csv", "curves.png",
                                 "split.json", "train.json"}) {
            QVERIFY2(fs::exists(run / file), file);
        }
        QCOMPARE(rows(run / "epochs.csv"), std::size_t(2));
        std::ifstream splitFile(run / "split.json");
        const nlohmann::json split = nlohmann::json::parse(splitFile);
        QCOMPARE(split.at("training").size() + split.at("validation").size(), std::size_t(3));
        QCOMPARE(split.at("validation").size(), std::size_t(1));

        const nn::LoadedModel best = nn::loadCheckpoint(run / "best.pt");
        QCOMPARE(best.info.preprocessing.windowLowHu, -150.0);
        QCOMPARE(best.info.preprocessing.windowHighHu, 250.0);
        QCOMPARE(best.info.preprocessing.inputSize, 32);
        QCOMPARE(best.info.config.baseWidth, 4);
        QVERIFY(best.info.training.validationDice.has_value());
        QVERIFY(QString::fromStdString(best.info.training.data).contains("case-folders"));

        // A second run with the same settings reuses the cache (given explicitly here).
        QStringList again = tinyRun(root / "data", root / "run2");
        again << "--epochs" << "1" << "--steps-per-epoch" << "1" << "--window" << "-150,250" << "--cache" << path(run / "cache");
        const test::ProcessResult second = test::runLiverseg(again);
        QVERIFY2(second.exitCode == 0, qPrintable(second.err));
        QVERIFY2(second.err.contains("0 cases prepared, 3 reused"), qPrintable(second.err));
    }

    void trainsOnTwoDimensionalPictures() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        fs::create_directories(root / "data" / "images");
        fs::create_directories(root / "data" / "masks");
        for (int volume = 0; volume < 4; ++volume) {
            for (const char* prefix : {"flipped_", "mirrored_"}) {
                const std::string name = prefix + std::to_string(500 + volume) + "_3.png";
                core::Picture image{32, 32, 3, std::vector<std::uint8_t>(32 * 32 * 3, std::uint8_t(40 + volume))};
                core::Picture mask{32, 32, 1, std::vector<std::uint8_t>(32 * 32, 0)};
                std::fill(mask.pixels.begin(), mask.pixels.begin() + 32 * 10, std::uint8_t(255));
                core::writePng(image, root / "data" / "images" / name);
                core::writePng(mask, root / "data" / "masks" / name);
            }
        }
        QStringList arguments = tinyRun(root / "data", root / "run");
        arguments << "--epochs" << "1" << "--val-fraction" << "0.25";
        const test::ProcessResult result = test::runLiverseg(arguments);
        QVERIFY2(result.exitCode == 0, qPrintable(result.err));
        QVERIFY2(result.err.contains("2d") && result.err.contains("[-10, 150]"), qPrintable(result.err));
        std::ifstream splitFile(root / "run" / "split.json");
        const nlohmann::json split = nlohmann::json::parse(splitFile);
        QCOMPARE(split.at("validation_groups").size(), std::size_t(1));
        QCOMPARE(split.at("validation").size(), std::size_t(2));  // both copies of the volume
        const nn::LoadedModel last = nn::loadCheckpoint(root / "run" / "last.pt");
        QCOMPARE(last.info.preprocessing.windowLowHu, -10.0);
        QCOMPARE(last.info.preprocessing.windowHighHu, 150.0);
    }

    void badInputExitsTwoWithOneLine() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "data", 1, 32, 2);
        fs::create_directories(root / "empty");
        fs::create_directories(root / "orphan");
        core::writeCtVolume(core::CtVolume(core::Geometry{{8, 8, 2}}, 0), root / "orphan" / "scan.nii.gz");
        fs::create_directories(root / "offgrid" / "c1");
        core::Geometry grid;
        grid.size = {8, 8, 2};
        core::writeCtVolume(core::CtVolume(grid, 0), root / "offgrid" / "c1" / "ct.nii.gz");
        grid.spacing = Eigen::Vector3d(2, 2, 2);
        core::writeLabelMap(core::LabelMap(grid, 0), root / "offgrid" / "c1" / "liver.nii.gz");

        const fs::path out = root / "out";
        const std::vector<std::pair<QStringList, QString>> cases = {
            {tinyRun(root / "missing", out), "no such folder"},
            {tinyRun(root / "empty", out), "no dataset found"},
            {tinyRun(root / "orphan", out), "CT without a mask"},
            {tinyRun(root / "offgrid", out), "does not lie on the CT's voxel grid"},
            {tinyRun(root / "data", out) << "--loss" << "l2", "unknown loss"},
            {tinyRun(root / "data", out) << "--liver-labels" << "1,x", "liver labels"},
            {tinyRun(root / "data", out) << "--val-fraction" << "1", "--val-fraction"},
            {{"train", "--data", path(root / "data"), "--arch", "vnet", "--out", path(out)}, "vnet"},
            {{"train", "--data", path(root / "data"), "--arch", "unet3plus", "--size", "40", "--out", path(out)}, "40"},
            {{"train", "--data", path(root / "data"), "--out", path(out)}, "--arch is required"},
            {{"train", "--out", path(root / "nothing"), "--resume"}, "no training run to resume"},
        };
        for (const auto& [arguments, expected] : cases) {
            const test::ProcessResult result = test::runLiverseg(arguments);
            const QString context = arguments.join(' ') + " -> " + result.err;
            QVERIFY2(result.exitCode == 2 && !result.crashed, qPrintable(context));
            // The error is the last line (progress lines about the dataset may precede it).
            const QString lastLine = result.err.trimmed().split('\n').last();
            QVERIFY2(lastLine.startsWith("liverseg train") && lastLine.contains(expected), qPrintable(context));
        }
    }

    void sigtermSavesAResumableStateAndResumeFinishesTheRun() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "data", 2, 32, 4);
        const fs::path run = root / "run";
        QStringList arguments = tinyRun(root / "data", run);
        arguments << "--epochs" << "1000" << "--steps-per-epoch" << "3" << "--progress" << "json";

        QProcess process;
        process.start(QString::fromUtf8(LIVERSEG_BINARY), arguments);
        QVERIFY(process.waitForStarted(10000));
        // Wait for the first training step, then ask it to stop as a service manager would.
        QString output;
        QElapsedTimer timer;
        timer.start();
        while (!output.contains("\"type\":\"step\"") && timer.elapsed() < 60000) {
            process.waitForReadyRead(1000);
            output += QString::fromUtf8(process.readAllStandardOutput());
        }
        QVERIFY2(output.contains("\"type\":\"step\""), qPrintable(QString::fromUtf8(process.readAllStandardError())));
        process.terminate();  // SIGTERM
        QVERIFY(process.waitForFinished(60000));
        const QString err = QString::fromUtf8(process.readAllStandardError());
        QCOMPARE(process.exitStatus(), QProcess::NormalExit);
        QCOMPARE(process.exitCode(), 143);
        QVERIFY2(err.contains("interrupted (SIGTERM)") && err.contains("--resume"), qPrintable(err));
        QVERIFY(fs::exists(run / "resume.pt"));
        QVERIFY(fs::exists(run / "last.pt"));
        nn::loadCheckpoint(run / "last.pt");

        // Options fixed at the start cannot change on resume.
        const test::ProcessResult changed = test::runLiverseg({"train", "--out", path(run), "--resume", "--lr", "0.1"});
        QCOMPARE(changed.exitCode, 2);
        QVERIFY2(changed.err.contains("--lr cannot change"), qPrintable(changed.err));
        // A new run into the same folder is refused.
        QCOMPARE(test::runLiverseg(tinyRun(root / "data", run)).exitCode, 2);

        const test::ProcessResult resumed =
            test::runLiverseg({"train", "--out", path(run), "--resume", "--epochs", "2", "--threads", "1"});
        QVERIFY2(resumed.exitCode == 0, qPrintable(resumed.err));
        QVERIFY2(resumed.err.contains("resuming at epoch"), qPrintable(resumed.err));
        QCOMPARE(rows(run / "steps.csv"), std::size_t(6));
        QCOMPARE(rows(run / "epochs.csv"), std::size_t(2));

        // A run that never saved a state (killed hard in its first epoch) starts over.
        fs::remove(run / "resume.pt");
        const test::ProcessResult restarted =
            test::runLiverseg({"train", "--out", path(run), "--resume", "--epochs", "1", "--threads", "1"});
        QVERIFY2(restarted.exitCode == 0, qPrintable(restarted.err));
        QVERIFY2(restarted.err.contains("starting the run over"), qPrintable(restarted.err));
        QCOMPARE(rows(run / "steps.csv"), std::size_t(3));
    }

    // Two ranks on 127.0.0.1 (c10d TCPStore + Gloo) with 2 slices each train like one
    // process with the 4 slices together; only rank 0 writes the run.
    void twoProcessesTrainLikeOneOnTheCombinedBatch() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        test::writePhantomCases(root / "data", 2, 32, 6);
        // Frozen BatchNorm: samples do not interact, so the split into ranks changes nothing
        // but float rounding.
        const QStringList common = {"--epochs", "2", "--steps-per-epoch", "3", "--val-fraction", "0", "--progress", "none",
                                    "--frozen-batchnorm"};

        const fs::path parallelRun = root / "parallel";
        const QStringList parallelArguments = tinyRun(root / "data", parallelRun) + common;  // --batch 2 per rank
        const int port = test::freeLoopbackPort();
        auto rank0 = startRank(parallelArguments, 0, 2, port);
        auto rank1 = startRank(parallelArguments, 1, 2, port);
        QVERIFY(rank0->waitForFinished(240000) && rank1->waitForFinished(240000));
        const QString err0 = QString::fromUtf8(rank0->readAllStandardError());
        const QString err1 = QString::fromUtf8(rank1->readAllStandardError());
        QVERIFY2(rank0->exitStatus() == QProcess::NormalExit && rank0->exitCode() == 0, qPrintable(err0));
        QVERIFY2(rank1->exitStatus() == QProcess::NormalExit && rank1->exitCode() == 0, qPrintable(err1));
        QVERIFY2(err0.contains("2 processes (gloo)"), qPrintable(err0));
        QVERIFY2(err0.contains("all 2 ranks hold identical weights"), qPrintable(err0));
        QVERIFY2(!err1.contains("epoch"), qPrintable(err1));  // rank 1 neither reports nor writes
        QCOMPARE(rows(parallelRun / "steps.csv"), std::size_t(6));
        QCOMPARE(nlohmann::json::parse(std::ifstream(parallelRun / "train.json")).at("world_size").get<int>(), 2);

        QStringList singleArguments = tinyRun(root / "data", root / "single") + common;
        singleArguments[singleArguments.indexOf("--batch") + 1] = "4";
        const test::ProcessResult single = test::runLiverseg(singleArguments, 240000);
        QVERIFY2(single.exitCode == 0, qPrintable(single.err));

        // Float sums in another order: close, not bitwise. Compare how far training moved the
        // weights with how far apart the two results are.
        QStringList initialArguments = tinyRun(root / "data", root / "initial") + common;
        initialArguments[initialArguments.indexOf("--epochs") + 1] = "1";
        initialArguments[initialArguments.indexOf("--steps-per-epoch") + 1] = "1";
        initialArguments << "--lr" << "1e-12";
        const test::ProcessResult initial = test::runLiverseg(initialArguments, 240000);
        QVERIFY2(initial.exitCode == 0, qPrintable(initial.err));
        const torch::Tensor start = flatParameters(root / "initial" / "last.pt");
        const torch::Tensor parallel = flatParameters(parallelRun / "last.pt");
        const torch::Tensor combined = flatParameters(root / "single" / "last.pt");
        const double moved = (combined - start).norm().item<double>();
        const double apart = (parallel - combined).norm().item<double>();
        qInfo("training moved the weights by %.4g; two ranks vs one process: %.4g (%.1f%%)", moved, apart,
              100 * apart / moved);
        QVERIFY(moved > 0);
        QVERIFY2(apart < 1e-3 * moved, "two ranks trained differently from one process on the combined batch");

        // A different world size cannot resume the run.
        const test::ProcessResult resumed = test::runLiverseg({"train", "--out", path(parallelRun), "--resume", "--epochs", "3"});
        QCOMPARE(resumed.exitCode, 2);
        QVERIFY2(resumed.err.contains("WORLD_SIZE=2"), qPrintable(resumed.err));
    }
};

QTEST_MAIN(TrainCommandTest)
#include "test_train_command.moc"

// The inference engine: masks land on exactly the CT's grid whatever the stored
// orientation, slices run visible-first, progress and cancel work, bad input is refused.
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/LabelOps.h"
#include "nn/Checkpoint.h"
#include "nn/InferenceEngine.h"
#include "nn/Networks.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

#include <torch/torch.h>

using namespace liverseg;

namespace {

nn::SegmentationNetwork tinyNetwork(nn::Architecture architecture) {
    torch::manual_seed(3);
    nn::ModelConfig config;
    config.architecture = architecture;
    config.baseWidth = 4;
    return nn::makeNetwork(config);
}

nn::Preprocessing tinyPreprocessing() {
    nn::Preprocessing pre;
    pre.windowLowHu = -150;
    pre.windowHighHu = 250;
    pre.pixelSpacingMm = 1.5;
    return pre;
}

// A CT with structure in every direction, so any flip would show.
core::CtVolume asymmetricCt() {
    core::Geometry geometry;
    geometry.size = {40, 36, 9};
    geometry.spacing = Eigen::Vector3d(0.9, 1.1, 2.5);
    geometry.origin = Eigen::Vector3d(-20, -15, 100);
    core::CtVolume ct(geometry, -1000);
    for (std::size_t z = 0; z < 9; ++z)
        for (std::size_t y = 0; y < 36; ++y)
            for (std::size_t x = 0; x < 40; ++x) ct.at(x, y, z) = std::int16_t(int(x * 7 + y * 3 + z * 11) % 400 - 100);
    return ct;
}

// The same physical image stored RAS-style: x and y axes reversed, data and origin moved.
core::CtVolume storedFlipped(const core::CtVolume& ct) {
    core::Geometry geometry = ct.geometry();
    const auto [nx, ny, nz] = geometry.size;
    geometry.origin = ct.geometry().indexToPhysical(Eigen::Vector3d(double(nx - 1), double(ny - 1), 0));
    geometry.direction = Eigen::Vector3d(-1, -1, 1).asDiagonal();
    core::CtVolume flipped(geometry);
    for (std::size_t z = 0; z < nz; ++z)
        for (std::size_t y = 0; y < ny; ++y)
            for (std::size_t x = 0; x < nx; ++x) flipped.at(nx - 1 - x, ny - 1 - y, z) = ct.at(x, y, z);
    return flipped;
}

nn::InferenceOptions cpuOptions() {
    nn::InferenceOptions options;
    options.device = nn::DeviceChoice::Cpu;
    options.threads = 2;
    options.batchSize = 3;
    options.postprocess = false;
    options.threshold = 0.5;
    return options;
}

}  // namespace

class InferenceTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void sliceOrderStartsAtTheVisibleSliceAndWidens() {
        QCOMPARE(nn::sliceOrder(6, 2), (std::vector<std::size_t>{2, 1, 3, 0, 4, 5}));
        QCOMPARE(nn::sliceOrder(4, std::nullopt), (std::vector<std::size_t>{0, 1, 2, 3}));
        QCOMPARE(nn::sliceOrder(3, 99), (std::vector<std::size_t>{2, 1, 0}));
        QVERIFY(nn::sliceOrder(0, 0).empty());
    }

    void maskLiesOnTheCtGridAndFollowsPhysicalSpace_data() {
        QTest::addColumn<int>("architecture");
        QTest::newRow("unet") << int(nn::Architecture::UNet);
        QTest::newRow("unet3plus") << int(nn::Architecture::UNet3Plus);
    }
    void maskLiesOnTheCtGridAndFollowsPhysicalSpace() {
        QFETCH(int, architecture);
        const nn::SegmentationNetwork network = tinyNetwork(nn::Architecture(architecture));
        nn::InferenceOptions options = cpuOptions();
        options.threshold = 0.5;
        const nn::InferenceEngine engine(network, tinyPreprocessing(), options);
        const core::CtVolume ct = asymmetricCt();
        const nn::Segmentation direct = engine.segment(ct);
        QVERIFY(direct.mask.geometry().sameGridAs(ct.geometry(), 0));
        QVERIFY(direct.probabilities.geometry().sameGridAs(ct.geometry(), 0));

        // The network must see the same radiological slice whichever way the file stores it.
        const core::CtVolume flippedCt = storedFlipped(ct);
        const nn::Segmentation flipped = engine.segment(flippedCt);
        QVERIFY(flipped.mask.geometry().sameGridAs(flippedCt.geometry(), 0));
        const auto [nx, ny, nz] = ct.size();
        std::size_t differences = 0;
        for (std::size_t z = 0; z < nz; ++z)
            for (std::size_t y = 0; y < ny; ++y)
                for (std::size_t x = 0; x < nx; ++x)
                    differences += direct.probabilities.at(x, y, z) != flipped.probabilities.at(nx - 1 - x, ny - 1 - y, z);
        QCOMPARE(differences, std::size_t(0));
    }

    void thresholdSplitsTheProbabilities() {
        const nn::InferenceEngine engine(tinyNetwork(nn::Architecture::UNet), tinyPreprocessing(), cpuOptions());
        const nn::Segmentation result = engine.segment(asymmetricCt());
        for (std::size_t i = 0; i < result.mask.voxelCount(); ++i) {
            const int p = result.probabilities.voxels()[i];
            if (p >= 129) QCOMPARE(int(result.mask.voxels()[i]), 1);
            if (p <= 126) QCOMPARE(int(result.mask.voxels()[i]), 0);
        }
    }

    void resultDoesNotDependOnBatchSizeOrStartSlice() {
        const nn::SegmentationNetwork network = tinyNetwork(nn::Architecture::UNet);
        nn::InferenceOptions options = cpuOptions();
        options.batchSize = 1;
        const nn::Segmentation one = nn::InferenceEngine(network, tinyPreprocessing(), options).segment(asymmetricCt());
        options.batchSize = 5;
        options.firstSlice = 6;
        const nn::Segmentation five = nn::InferenceEngine(network, tinyPreprocessing(), options).segment(asymmetricCt());
        std::size_t maxDifference = 0;
        for (std::size_t i = 0; i < one.probabilities.voxelCount(); ++i) {
            maxDifference = std::max<std::size_t>(
                maxDifference, std::size_t(std::abs(int(one.probabilities.voxels()[i]) - int(five.probabilities.voxels()[i]))));
        }
        QVERIFY2(maxDifference <= 1, qPrintable(QString::number(maxDifference)));  // float summation order only
    }

    void progressReportsEverySliceAndCancelStops() {
        const nn::InferenceEngine engine(tinyNetwork(nn::Architecture::UNet), tinyPreprocessing(), cpuOptions());
        std::vector<std::size_t> reported;
        nn::InferenceProgress progress;
        progress.onProgress = [&](std::size_t done, std::size_t total) {
            QCOMPARE(total, std::size_t(9));
            reported.push_back(done);
        };
        engine.segment(asymmetricCt(), progress);
        QCOMPARE(reported, (std::vector<std::size_t>{3, 6, 9}));

        int batches = 0;
        progress.onProgress = {};
        progress.cancelled = [&] { return ++batches > 1; };
        QVERIFY_THROWS_EXCEPTION(core::Cancelled, engine.segment(asymmetricCt(), progress));
        QCOMPARE(batches, 2);
    }

    void foldingBatchNormKeepsTheLogits_data() {
        QTest::addColumn<int>("architecture");
        QTest::newRow("unet") << int(nn::Architecture::UNet);
        QTest::newRow("unet3plus") << int(nn::Architecture::UNet3Plus);
    }
    void foldingBatchNormKeepsTheLogits() {
        QFETCH(int, architecture);
        const nn::SegmentationNetwork network = tinyNetwork(nn::Architecture(architecture));
        {
            // Running statistics far from the defaults, so folding has something to do.
            torch::NoGradGuard noGrad;
            for (auto& buffer : network->named_buffers()) {
                if (buffer.key().find("running_mean") != std::string::npos) buffer.value().uniform_(-0.5, 0.5);
                if (buffer.key().find("running_var") != std::string::npos) buffer.value().uniform_(0.3, 2.0);
            }
        }
        network->eval();
        const torch::Tensor input = torch::rand({2, 3, 48, 64});
        torch::Tensor before;
        {
            torch::NoGradGuard noGrad;
            before = network->forward(input);
        }
        const nn::InferenceEngine engine(network, tinyPreprocessing(), cpuOptions());
        int batchNorms = 0;
        for (const auto& module : network->modules()) batchNorms += bool(dynamic_cast<torch::nn::BatchNorm2dImpl*>(module.get()));
        QCOMPARE(batchNorms, 0);
        const float difference = (engine.logits(input) - before).abs().max().item<float>();
        QVERIFY2(difference < 1e-4f, qPrintable(QString::number(difference)));
    }

    void bf16StaysCloseToFp32() {
        const nn::SegmentationNetwork network = tinyNetwork(nn::Architecture::UNet);
        const nn::StateDict weights = nn::stateDict(*network);
        nn::InferenceOptions options = cpuOptions();
        options.precision = nn::Precision::Bf16;
        if (!nn::cpuHasNativeBf16()) {
            QVERIFY_THROWS_EXCEPTION(core::InputError, nn::InferenceEngine(network, tinyPreprocessing(), options));
            QSKIP("no native bf16 on this CPU");
        }
        const nn::InferenceEngine bf16(nn::networkFromStateDict(network->config(), weights, "test"), tinyPreprocessing(),
                                       options);
        options.precision = nn::Precision::Fp32;
        const nn::InferenceEngine fp32(nn::networkFromStateDict(network->config(), weights, "test"), tinyPreprocessing(),
                                       options);
        const core::CtVolume ct = asymmetricCt();
        const nn::Segmentation a = fp32.segment(ct), b = bf16.segment(ct);
        int worst = 0;
        for (std::size_t i = 0; i < a.probabilities.voxelCount(); ++i) {
            worst = std::max(worst, std::abs(int(a.probabilities.voxels()[i]) - int(b.probabilities.voxels()[i])));
        }
        QVERIFY2(worst <= 8, qPrintable(QString("max probability difference %1/255").arg(worst)));
        QVERIFY(core::diceCoefficient(a.mask, b.mask) > 0.95);
    }

    void nonAxialCtIsRefused() {
        core::CtVolume ct = asymmetricCt();
        core::Geometry sagittal = ct.geometry();
        sagittal.direction << 0, 0, 1, 1, 0, 0, 0, 1, 0;
        const core::CtVolume stored(sagittal, ct.voxels());
        const nn::InferenceEngine engine(tinyNetwork(nn::Architecture::UNet), tinyPreprocessing(), cpuOptions());
        QVERIFY_THROWS_EXCEPTION(core::InputError, engine.segment(stored));
    }

    void cudaRequestWithoutCudaIsAClearError() {
        if (torch::cuda::is_available()) QSKIP("a GPU is present");
        nn::InferenceOptions options = cpuOptions();
        options.device = nn::DeviceChoice::Cuda;
        QVERIFY_THROWS_EXCEPTION(core::InputError,
                                 nn::InferenceEngine(tinyNetwork(nn::Architecture::UNet), tinyPreprocessing(), options));
    }

    void predictCommandWritesMasksOnTheCtGrid() {
        QTemporaryDir dir;
        const std::string ctPath = dir.filePath("ct.nrrd").toStdString();
        const core::CtVolume ct = storedFlipped(asymmetricCt());
        core::writeCtVolume(ct, ctPath);
        nn::CheckpointInfo info;
        info.config = tinyNetwork(nn::Architecture::UNet)->config();
        info.preprocessing = tinyPreprocessing();
        nn::saveCheckpoint(dir.filePath("unet.ckpt").toStdString(), info, *tinyNetwork(nn::Architecture::UNet));
        info.config.architecture = nn::Architecture::UNet3Plus;
        nn::saveCheckpoint(dir.filePath("unet3plus.ckpt").toStdString(), info, *tinyNetwork(nn::Architecture::UNet3Plus));

        const test::ProcessResult result = test::runLiverseg(
            {"predict", "--weights", dir.filePath("unet.ckpt"), "--weights2", dir.filePath("unet3plus.ckpt"), "--input",
             QString::fromStdString(ctPath), "--output", dir.filePath("mask.nii.gz"), "--probabilities",
             dir.filePath("p.nii.gz"), "--threads", "2"});
        QVERIFY2(result.exitCode == 0, qPrintable(result.err));
        QVERIFY(result.out.contains("agreement (Dice)"));
        for (const char* name : {"mask.nii.gz", "mask.2.nii.gz", "p.nii.gz"}) {
            const core::LabelMap mask = core::readLabelMapOnGrid(dir.filePath(name).toStdString(), ct.geometry());
            QVERIFY(mask.voxelCount() == ct.voxelCount());
        }
    }

    void predictCommandRefusesBadInput() {
        QTemporaryDir dir;
        test::writeBytes(dir.filePath("fake.ckpt").toStdString(), "not a checkpoint");
        core::Geometry geometry;
        geometry.size = {20, 20, 3};
        core::writeCtVolume(core::CtVolume(geometry, 0), dir.filePath("ct.nii.gz").toStdString());
        const QString ct = dir.filePath("ct.nii.gz");
        for (const QStringList& arguments :
             {QStringList{"predict", "--weights", dir.filePath("fake.ckpt"), "--input", ct, "--output", dir.filePath("m.nii.gz")},
              QStringList{"predict", "--weights", dir.filePath("fake.ckpt"), "--input", ct, "--output", dir.filePath("m.png")},
              QStringList{"predict", "--weights", dir.filePath("fake.ckpt"), "--input", ct},
              QStringList{"predict", "--weights", dir.filePath("fake.ckpt"), "--input", ct, "--output",
                          dir.filePath("m.nii.gz"), "--precision", "fp8"}}) {
            const test::ProcessResult result = test::runLiverseg(arguments);
            QVERIFY(!result.crashed);
            QCOMPARE(result.exitCode, 2);
            QCOMPARE(result.err.trimmed().count('\n'), 0);
        }
        QVERIFY(!QFile::exists(dir.filePath("m.nii.gz")));
    }
};

QTEST_GUILESS_MAIN(InferenceTest)
#include "test_inference.moc"

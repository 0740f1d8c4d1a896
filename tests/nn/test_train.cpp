// The trainer: augmentation, every head learning, overfitting a tiny phantom, bit-exact
// resume, and the run folder's files.
#include "core/Dataset.h"
#include "core/DatasetPicture.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/Phantom.h"
#include "core/SliceCache.h"
#include "nn/Checkpoint.h"
#include "nn/Networks.h"
#include "nn/Threads.h"
#include "nn/Trainer.h"

#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <set>

using namespace liverseg;
namespace fs = std::filesystem;

namespace {

// `count` phantom case folders of size x size x slices under root/data.
core::Dataset phantomDataset(const fs::path& root, int count, std::size_t size, std::size_t slices) {
    for (int i = 0; i < count; ++i) {
        core::PhantomOptions options;
        options.seed = std::uint64_t(i + 1);
        options.size = {size, size, slices};
        const core::PhantomCase phantom = core::makeAbdominalPhantom(options);
        const fs::path folder = root / "data" / ("case" + std::to_string(i));
        fs::create_directories(folder);
        core::writeCtVolume(phantom.ct, folder / "ct.nii");
        core::writeLabelMap(phantom.liver, folder / "liver.nii");
    }
    return core::openDataset(root / "data");
}

std::shared_ptr<const core::SliceCache> cacheOf(const core::Dataset& dataset, const fs::path& folder, int side) {
    nn::Preprocessing preprocessing;
    preprocessing.inputSize = side;
    return std::make_shared<core::SliceCache>(dataset, nn::slicePreparationFor(preprocessing, core::LiverLabels()), folder);
}

nn::ModelConfig unetConfig(int width) {
    nn::ModelConfig config;
    config.architecture = nn::Architecture::UNet;
    config.baseWidth = width;
    return config;
}

nn::ModelConfig cgmConfig(int width) {
    nn::ModelConfig config;
    config.architecture = nn::Architecture::UNet3Plus;
    config.variant = nn::UNet3PlusVariant::ClassificationGuided;
    config.baseWidth = width;
    return config;
}

nn::SegmentationNetwork seededNetwork(const nn::ModelConfig& config, std::uint64_t seed) {
    torch::manual_seed(seed);
    return nn::makeNetwork(config);
}

bool identicalWeights(const torch::nn::Module& a, const torch::nn::Module& b) {
    const nn::StateDict x = nn::stateDict(a), y = nn::stateDict(b);
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (x[i].key() != y[i].key() || !torch::equal(x[i].value(), y[i].value())) return false;
    }
    return true;
}

std::size_t lineCount(const fs::path& file) {
    std::ifstream in(file);
    std::size_t lines = 0;
    for (std::string line; std::getline(in, line);) lines += line.empty() ? 0 : 1;
    return lines;
}

}  // namespace

class TrainerTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { nn::setIntraOpThreads(1); }

    void augmentationIsSeededAndMovesMasksWithTheImage() {
        // An image whose mask is exactly "image > 0.5": any spatial transform must keep it so
        // (up to interpolation at the edges); intensity jitter must not touch the mask.
        torch::manual_seed(3);
        torch::Tensor image = torch::zeros({6, 3, 32, 32});
        image.index_put_({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(4, 20),
                          torch::indexing::Slice(6, 14)},
                         0.9);
        torch::Tensor mask = image.narrow(1, 0, 1).gt(0.5).to(torch::kFloat32);
        nn::AugmentationOptions options;
        options.enabled = true;
        options.intensityProbability = 0;
        options.transformProbability = 1;
        torch::Tensor imageA = image.clone(), maskA = mask.clone(), imageB = image.clone(), maskB = mask.clone();
        nn::augmentBatch(imageA, maskA, 42, options);
        nn::augmentBatch(imageB, maskB, 42, options);
        QVERIFY(torch::equal(imageA, imageB) && torch::equal(maskA, maskB));
        QVERIFY(!torch::equal(maskA, mask));  // something moved
        const double agreement = maskA.eq(imageA.narrow(1, 0, 1).gt(0.5).to(torch::kFloat32)).to(torch::kFloat64).mean().item<double>();
        QVERIFY2(agreement > 0.97, qPrintable(QString::number(agreement)));
        torch::Tensor imageC = image.clone(), maskC = mask.clone();
        nn::augmentBatch(imageC, maskC, 43, options);
        QVERIFY(!torch::equal(imageC, imageA));

        options.transformProbability = 0;
        options.flipProbability = 0;
        options.intensityProbability = 1;
        torch::Tensor imageD = image.clone(), maskD = mask.clone();
        nn::augmentBatch(imageD, maskD, 7, options);
        QVERIFY(torch::equal(maskD, mask));
        QVERIFY(!torch::equal(imageD, image));
        QVERIFY(imageD.min().item<float>() >= 0 && imageD.max().item<float>() <= 1);

        options.enabled = false;
        torch::Tensor imageE = image.clone(), maskE = mask.clone();
        nn::augmentBatch(imageE, maskE, 7, options);
        QVERIFY(torch::equal(imageE, image));
    }

    void everyHeadAndTheClassifierLearnButFrozenPartsDoNot() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        const core::Dataset dataset = phantomDataset(root, 1, 32, 4);
        const core::DatasetSplit split{{0}, {}, 1, 0};
        const auto trainThreeSteps = [&](const std::vector<std::string>& frozenPrefixes) {
            nn::SegmentationNetwork network = seededNetwork(cgmConfig(4), 5);
            std::map<std::string, torch::Tensor> initial;
            for (const auto& item : nn::stateDict(*network)) initial[item.key()] = item.value().clone();
            nn::TrainingOptions options;
            options.batchSize = 4;
            options.frozenPrefixes = frozenPrefixes;
            nn::Trainer trainer(network, nn::makeTrainingData(cacheOf(dataset, root / "cache", 32), dataset, split), options);
            // A few steps: with the CGM gate closed on a slice, the heads get no gradient from it.
            for (int step = 0; step < 3; ++step) trainer.trainStep({{0, 0}, {0, 1}, {0, 2}, {0, 3}});
            std::set<std::string> changed;
            for (const auto& item : nn::stateDict(*network)) {
                if (!torch::equal(initial.at(item.key()), item.value())) changed.insert(item.key());
            }
            return changed;
        };

        const std::set<std::string> free = trainThreeSteps({});
        for (const char* head : {"outconv1.weight", "outconv2.weight", "outconv3.weight", "outconv4.weight", "outconv5.weight",
                                 "cls.1.weight", "hd2_PT_de1_Conv_BN_ReLU.conv_bn.0.weight", "dconv.double_conv.0.weight"}) {
            QVERIFY2(free.count(head), head);
        }
        // A frozen encoder keeps its weights and its BatchNorm statistics; the rest trains.
        const std::set<std::string> frozen = trainThreeSteps({"dconv.", "down"});
        for (const std::string& name : frozen) {
            QVERIFY2(name.rfind("dconv.", 0) != 0 && name.rfind("down", 0) != 0, name.c_str());
        }
        QVERIFY(frozen.count("cls.1.weight"));
    }

    void aTinyNetworkOverfitsATinyPhantom() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        const core::Dataset dataset = phantomDataset(root, 1, 64, 8);
        // Validate on the training case itself: the point is that the loop can learn.
        const core::DatasetSplit split{{0}, {0}, 1, 0};
        nn::TrainingOptions options;
        options.batchSize = 4;
        options.learningRate = 1e-2;
        options.loss = nn::LossKind::BceDice;
        options.stepsPerEpoch = 10;
        options.epochs = 8;
        nn::Trainer trainer(seededNetwork(unetConfig(8), 1),
                            nn::makeTrainingData(cacheOf(dataset, root / "cache", 64), dataset, split), options);
        std::vector<double> losses;
        std::vector<double> dice;
        nn::TrainerHooks hooks;
        hooks.onStep = [&](const nn::StepReport& report) { losses.push_back(report.loss); };
        hooks.onEpoch = [&](const nn::EpochReport& report) { dice.push_back(report.validationDice.value()); };
        QVERIFY(trainer.run(hooks) == nn::TrainingEnd::Finished);
        QCOMPARE(losses.size(), std::size_t(80));
        const double first = (losses[0] + losses[1]) / 2, last = (losses[78] + losses[79]) / 2;
        QVERIFY2(last < 0.3 * first, qPrintable(QString("loss %1 -> %2").arg(first).arg(last)));
        QVERIFY2(dice.back() > 0.8, qPrintable(QString("Dice %1 (first epoch %2)").arg(dice.back()).arg(dice.front())));
        QCOMPARE(*trainer.bestValidationDice(), *std::max_element(dice.begin(), dice.end()));
    }

    void resumingContinuesBitExactly() {
        // UNet3+ with the classifier (dropout), deep supervision and augmentation on, across an
        // epoch boundary with validation: 6 steps straight == 4 steps, save, load, 2 steps.
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        const core::Dataset dataset = phantomDataset(root, 2, 32, 6);
        const core::DatasetSplit split{{0}, {1}, 1, 0.5};
        const auto cache = cacheOf(dataset, root / "cache", 32);
        nn::TrainingOptions options;
        options.batchSize = 2;
        options.stepsPerEpoch = 3;
        options.epochs = 2;
        options.seed = 11;
        options.augmentation.enabled = true;
        options.loss = nn::LossKind::BceDice;

        nn::SegmentationNetwork straight = seededNetwork(cgmConfig(4), 2);
        nn::Trainer straightTrainer(straight, nn::makeTrainingData(cache, dataset, split), options);
        QVERIFY(straightTrainer.run() == nn::TrainingEnd::Finished);
        QCOMPARE(straightTrainer.globalStep(), std::int64_t(6));

        nn::SegmentationNetwork first = seededNetwork(cgmConfig(4), 2);
        nn::Trainer firstTrainer(first, nn::makeTrainingData(cache, dataset, split), options);
        nn::TrainerHooks stopAfterFour;
        stopAfterFour.stopRequested = [&] { return firstTrainer.globalStep() >= 4; };
        QVERIFY(firstTrainer.run(stopAfterFour) == nn::TrainingEnd::Stopped);
        QCOMPARE(firstTrainer.epoch(), 1);
        QCOMPARE(firstTrainer.stepInEpoch(), std::int64_t(1));
        firstTrainer.saveState(root / "resume.pt", {{"note", "kept"}});
        QVERIFY(!identicalWeights(*first, *straight));

        // A different initialisation: everything must come from the state file.
        nn::SegmentationNetwork resumed = seededNetwork(cgmConfig(4), 99);
        nn::Trainer resumedTrainer(resumed, nn::makeTrainingData(cache, dataset, split), options);
        const nlohmann::json extra = resumedTrainer.loadState(root / "resume.pt");
        QCOMPARE(extra.at("note").get<std::string>(), std::string("kept"));
        QCOMPARE(resumedTrainer.globalStep(), std::int64_t(4));
        QVERIFY(resumedTrainer.run() == nn::TrainingEnd::Finished);
        QVERIFY(identicalWeights(*resumed, *straight));
        QCOMPARE(resumedTrainer.bestValidationDice(), straightTrainer.bestValidationDice());

        // A state for another network is refused with a clear error.
        nn::Trainer other(seededNetwork(unetConfig(4), 1), nn::makeTrainingData(cache, dataset, split), options);
        try {
            other.loadState(root / "resume.pt");
            QFAIL("loaded a UNet3+ state into a UNet");
        } catch (const core::InputError& error) {
            QVERIFY2(QString(error.what()).contains("saved for unet3plus"), error.what());
        }
    }

    void theRunFolderKeepsCurvesCheckpointsAndTheSplit() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        const core::Dataset dataset = phantomDataset(root, 3, 32, 4);
        const core::DatasetSplit split = core::splitByGroup(dataset, 0.34, 4);
        QCOMPARE(split.validation.size(), std::size_t(1));
        nn::CheckpointInfo info;
        info.config = unetConfig(4);
        info.preprocessing.inputSize = 32;
        info.training.data = "phantoms";
        nn::TrainingOptions options;
        options.batchSize = 2;
        options.stepsPerEpoch = 2;
        options.epochs = 2;
        nn::SegmentationNetwork network = seededNetwork(info.config, 1);
        nn::Trainer trainer(network, nn::makeTrainingData(cacheOf(dataset, root / "cache", 32), dataset, split), options);
        const fs::path runFolder = root / "run";
        nn::TrainingRunFolder folder(runFolder, info);
        nn::TrainingRunFolder::writeSplit(runFolder, dataset, split);
        folder.startLogs(trainer, false);
        nn::TrainerHooks hooks;
        hooks.onStep = [&](const nn::StepReport& report) { folder.logStep(report); };
        hooks.onEpoch = [&](const nn::EpochReport& report) { folder.finishEpoch(report, trainer); };
        QVERIFY(trainer.run(hooks) == nn::TrainingEnd::Finished);

        QCOMPARE(lineCount(runFolder / "steps.csv"), std::size_t(1 + 4));
        QCOMPARE(lineCount(runFolder / "epochs.csv"), std::size_t(1 + 2));
        QCOMPARE(lineCount(runFolder / "validation.csv"), std::size_t(1 + 2));
        const core::Picture plot = core::readGreyPicture(runFolder / "curves.png");
        QCOMPARE(plot.width, std::size_t(800));
        QVERIFY(std::any_of(plot.pixels.begin(), plot.pixels.end(), [](std::uint8_t v) { return v < 200; }));

        const nn::LoadedModel last = nn::loadCheckpoint(folder.lastCheckpoint());
        QCOMPARE(last.info.training.epochs, 2);
        QVERIFY(last.info.training.validationDice.has_value());
        QVERIFY(!last.info.training.date.empty());
        QCOMPARE(last.info.training.data, std::string("phantoms"));
        QVERIFY(last.info.preprocessing == info.preprocessing);
        QVERIFY(fs::exists(folder.bestCheckpoint()));
        QVERIFY(identicalWeights(*last.network, *network));

        const core::DatasetSplit reread = nn::TrainingRunFolder::readSplit(runFolder, dataset);
        QCOMPARE(reread.training, split.training);
        QCOMPARE(reread.validation, split.validation);

        // Resuming from an earlier state drops the log rows written after it.
        nn::Trainer early(seededNetwork(info.config, 1), nn::makeTrainingData(cacheOf(dataset, root / "cache", 32), dataset, split),
                          options);
        nn::TrainerHooks stopAtThree;
        stopAtThree.stopRequested = [&] { return early.globalStep() >= 3; };
        early.run(stopAtThree);
        folder.startLogs(early, true);
        QCOMPARE(lineCount(runFolder / "steps.csv"), std::size_t(1 + 3));
        QCOMPARE(lineCount(runFolder / "epochs.csv"), std::size_t(1 + 1));
    }
};

QTEST_APPLESS_MAIN(TrainerTest)
#include "test_train.moc"

// Dataset layouts, liver labels and splits.
#include "core/Dataset.h"
#include "core/DatasetPicture.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>

#include <set>

using namespace liverseg;
namespace fs = std::filesystem;

namespace {

core::Geometry smallGeometry() {
    core::Geometry geometry;
    geometry.size = {12, 10, 4};
    geometry.spacing = Eigen::Vector3d(1.5, 1.5, 3.0);
    return geometry;
}

void writeCase(const fs::path& ct, const fs::path& mask) {
    fs::create_directories(ct.parent_path());
    fs::create_directories(mask.parent_path());
    core::writeCtVolume(core::CtVolume(smallGeometry(), 40), ct);
    core::LabelMap labels(smallGeometry(), 0);
    labels.at(3, 3, 1) = 1;
    core::writeLabelMap(labels, mask);
}

void writePicture(const fs::path& path, std::uint8_t value, int components = 1) {
    fs::create_directories(path.parent_path());
    core::Picture picture{16, 16, components, std::vector<std::uint8_t>(16 * 16 * std::size_t(components), value)};
    core::writePng(picture, path);
}

// The InputError message of `action`, or "" when it does not throw one.
template <typename Action>
QString inputError(Action action) {
    try {
        action();
    } catch (const core::InputError& error) {
        return QString::fromStdString(error.what());
    }
    return {};
}

std::vector<std::string> ids(const core::Dataset& dataset) {
    std::vector<std::string> result;
    for (const auto& item : dataset.cases) result.push_back(item.id);
    return result;
}

}  // namespace

class DatasetTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void litsPairsAreFoundInTheFolderAndItsSubfoldersInNaturalOrder() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        writeCase(root / "volume-10.nii", root / "segmentation-10.nii");
        writeCase(root / "volume-2.nii", root / "segmentation-2.nii");
        writeCase(root / "Training Batch 2" / "volume-31.nii.gz", root / "Training Batch 2" / "segmentation-31.nii.gz");
        const core::Dataset dataset = core::openDataset(root);
        QVERIFY(dataset.layout == core::DatasetLayout::Lits);
        QCOMPARE(ids(dataset), (std::vector<std::string>{"volume-2", "volume-10", "volume-31"}));
        QCOMPARE(dataset.cases[1].mask.filename().string(), std::string("segmentation-10.nii"));
        QCOMPARE(dataset.cases[2].group, std::string("volume-31"));
    }

    void decathlonTakesChannelZeroAndIgnoresHiddenFiles() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        writeCase(root / "imagesTr" / "liver_3_0000.nii.gz", root / "labelsTr" / "liver_3.nii.gz");
        writeCase(root / "imagesTr" / "liver_12_0000.nii.gz", root / "labelsTr" / "liver_12.nii.gz");
        writeCase(root / "imagesTr" / "liver_3_0001.nii.gz", root / "spare" / "unused.nii.gz");
        test::writeBytes(root / "imagesTr" / "._liver_3_0000.nii.gz", "macOS resource fork");
        fs::create_directories(root / "imagesTs");
        const core::Dataset dataset = core::openDataset(root);
        QVERIFY(dataset.layout == core::DatasetLayout::Decathlon);
        QCOMPARE(ids(dataset), (std::vector<std::string>{"liver_3", "liver_12"}));
        QCOMPARE(dataset.cases[0].image.filename().string(), std::string("liver_3_0000.nii.gz"));
        QCOMPARE(dataset.notes.size(), std::size_t(2));  // extra channel, imagesTs

        // The original MSD naming has no channel suffix.
        QTemporaryDir msd;
        const fs::path msdRoot = msd.path().toStdString();
        writeCase(msdRoot / "imagesTr" / "liver_0.nii.gz", msdRoot / "labelsTr" / "liver_0.nii.gz");
        QCOMPARE(ids(core::openDataset(msdRoot)), (std::vector<std::string>{"liver_0"}));
    }

    void caseFoldersAsThePhantomCommandWritesThem() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        writeCase(root / "phantom1" / "ct.nii.gz", root / "phantom1" / "liver.nii.gz");
        writeCase(root / "phantom2" / "ct.nii.gz", root / "phantom2" / "mask.nii.gz");
        fs::create_directories(root / "notes");
        const core::Dataset dataset = core::openDataset(root);
        QVERIFY(dataset.layout == core::DatasetLayout::CasePairs);
        QCOMPARE(ids(dataset), (std::vector<std::string>{"phantom1", "phantom2"}));
        QCOMPARE(dataset.cases[1].mask.filename().string(), std::string("mask.nii.gz"));
        QCOMPARE(dataset.notes.size(), std::size_t(1));

        // One case folder is a dataset of one case.
        const core::Dataset single = core::openDataset(root / "phantom1");
        QCOMPARE(ids(single), (std::vector<std::string>{"phantom1"}));

        // A named mask (e.g. TotalSegmentator's labels117.nii.gz).
        QTemporaryDir other;
        const fs::path totalseg = fs::path(other.path().toStdString()) / "s01";
        writeCase(totalseg / "ct.nii.gz", totalseg / "labels117.nii.gz");
        QVERIFY(inputError([&] { core::openDataset(totalseg); }).contains("CT without a mask"));
        core::DatasetOptions options;
        options.caseMaskName = "labels117.nii.gz";
        QCOMPARE(core::openDataset(totalseg, options).cases.front().mask.filename().string(), std::string("labels117.nii.gz"));
    }

    void filePairsWithAMaskSuffix() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        writeCase(root / "patient7.nii.gz", root / "patient7_mask.nii.gz");
        writeCase(root / "patient8.nrrd", root / "patient8_seg.nrrd");
        const core::Dataset dataset = core::openDataset(root);
        QVERIFY(dataset.layout == core::DatasetLayout::FilePairs);
        QCOMPARE(ids(dataset), (std::vector<std::string>{"patient7", "patient8"}));
        QCOMPARE(dataset.cases[1].mask.filename().string(), std::string("patient8_seg.nrrd"));
    }

    void twoDimensionalPicturesAreGroupedByVolume() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        for (const char* name : {"flipped_10003_106.png", "mirrored_10003_106.png", "10004_7.png"}) {
            writePicture(root / "images" / name, 90, 3);
            writePicture(root / "masks" / name, 255);
        }
        const core::Dataset dataset = core::openDataset(root);
        QVERIFY(dataset.layout == core::DatasetLayout::Slices2D);
        QVERIFY(dataset.isTwoDimensional());
        QCOMPARE(dataset.cases.size(), std::size_t(3));
        QCOMPARE(dataset.groupCount(), std::size_t(2));
        std::set<std::string> groups;
        for (const auto& item : dataset.cases) groups.insert(item.group);
        QCOMPARE(groups, (std::set<std::string>{"10003", "10004"}));
        // Three identical channels read back as the grey value.
        const core::Picture picture = core::readGreyPicture(dataset.cases.front().image);
        QCOMPARE(picture.width, std::size_t(16));
        QCOMPARE(picture.components, 1);
        QCOMPARE(int(picture.pixels[37]), 90);
    }

    void volumeIdsOfSliceNames() {
        QCOMPARE(core::volumeIdOfSliceName("flipped_10003_106.jpg"), std::string("10003"));
        QCOMPARE(core::volumeIdOfSliceName("mirrored_10003_17.jpg"), std::string("10003"));
        QCOMPARE(core::volumeIdOfSliceName("liver_7_120.png"), std::string("liver_7"));
        QCOMPARE(core::volumeIdOfSliceName("slice.png"), std::string("slice"));
        QCOMPARE(core::volumeIdOfSliceName("case_a.png"), std::string("case_a"));
    }

    void unusableFoldersAreClearInputErrors() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        QVERIFY(inputError([&] { core::openDataset(root / "missing"); }).contains("no such folder"));
        QVERIFY(inputError([&] { core::openDataset(root); }).contains("no dataset found"));
        test::writeBytes(root / "readme.txt", "not a dataset");
        QVERIFY(inputError([&] { core::openDataset(root / "readme.txt"); }).contains("not a folder"));
        QVERIFY(inputError([&] { core::openDataset(root); }).contains("no dataset found"));

        QTemporaryDir lits;
        const fs::path litsRoot = lits.path().toStdString();
        writeCase(litsRoot / "volume-1.nii", litsRoot / "segmentation-1.nii");
        writeCase(litsRoot / "volume-2.nii", litsRoot / "elsewhere" / "x.nii");
        const QString noMask = inputError([&] { core::openDataset(litsRoot); });
        QVERIFY2(noMask.contains("volume-2.nii: CT without a mask"), qPrintable(noMask));

        QTemporaryDir pairs;
        const fs::path pairsRoot = pairs.path().toStdString();
        writeCase(pairsRoot / "a.nii.gz", pairsRoot / "a_mask.nii.gz");
        writeCase(pairsRoot / "b.nii.gz", pairsRoot / "spare" / "b.nii.gz");
        QVERIFY(inputError([&] { core::openDataset(pairsRoot); }).contains("b.nii.gz: CT without a mask"));

        QTemporaryDir decathlon;
        const fs::path decathlonRoot = decathlon.path().toStdString();
        writeCase(decathlonRoot / "imagesTr" / "x_0000.nii.gz", decathlonRoot / "labelsTr" / "y.nii.gz");
        QVERIFY(inputError([&] { core::openDataset(decathlonRoot); }).contains("CT without a mask"));

        QTemporaryDir slices;
        const fs::path slicesRoot = slices.path().toStdString();
        writePicture(slicesRoot / "images" / "1_1.png", 10);
        writePicture(slicesRoot / "images" / "1_2.png", 10);
        writePicture(slicesRoot / "masks" / "1_1.png", 0);
        QVERIFY(inputError([&] { core::openDataset(slicesRoot); }).contains("1_2.png: picture without a mask"));

        QTemporaryDir emptyLayout;
        const fs::path emptyRoot = emptyLayout.path().toStdString();
        fs::create_directories(emptyRoot / "images");
        fs::create_directories(emptyRoot / "masks");
        QVERIFY(inputError([&] { core::openDataset(emptyRoot); }).contains("no cases"));
    }

    void liverLabels() {
        const core::LiverLabels everything;
        QVERIFY(everything.isDefault());
        QVERIFY(!everything.isLiver(0));
        QVERIFY(everything.isLiver(1) && everything.isLiver(2) && everything.isLiver(255));
        const core::LiverLabels lits = core::LiverLabels::parse("1,2");
        QVERIFY(lits.isLiver(1) && lits.isLiver(2) && !lits.isLiver(3) && !lits.isLiver(0));
        QCOMPARE(lits.describe(), std::string("1,2"));
        QVERIFY(core::LiverLabels::parse("5").isLiver(5));
        for (const char* bad : {"", "0", "256", "1,,2", "1,", "a", "-1", "1.5"}) {
            QVERIFY2(!inputError([&] { core::LiverLabels::parse(bad); }).isEmpty(), bad);
        }
    }

    void splitsKeepEveryVolumeOnOneSide() {
        core::Dataset dataset;
        dataset.layout = core::DatasetLayout::Slices2D;
        for (int volume = 0; volume < 10; ++volume) {
            for (const char* prefix : {"flipped_", "mirrored_"}) {
                for (int slice = 0; slice < 3; ++slice) {
                    const std::string name = prefix + std::to_string(100 + volume) + "_" + std::to_string(slice) + ".jpg";
                    dataset.cases.push_back({name, core::volumeIdOfSliceName(name), name, name});
                }
            }
        }
        const core::DatasetSplit split = core::splitByGroup(dataset, 0.2, 7);
        std::set<std::string> training, validation;
        for (std::size_t i : split.training) training.insert(dataset.cases[i].group);
        for (std::size_t i : split.validation) validation.insert(dataset.cases[i].group);
        QCOMPARE(validation.size(), std::size_t(2));
        QCOMPARE(training.size(), std::size_t(8));
        for (const auto& group : validation) QVERIFY2(!training.count(group), group.c_str());
        QCOMPARE(split.training.size() + split.validation.size(), dataset.cases.size());
        QCOMPARE(split.validation.size(), std::size_t(12));

        // Seeded: the same seed gives the same split, some other seed another one.
        QCOMPARE(core::splitByGroup(dataset, 0.2, 7).validation, split.validation);
        bool differs = false;
        for (std::uint64_t seed = 8; seed < 20 && !differs; ++seed) {
            differs = core::splitByGroup(dataset, 0.2, seed).validation != split.validation;
        }
        QVERIFY(differs);

        QVERIFY(core::splitByGroup(dataset, 0.0, 7).validation.empty());
        QCOMPARE(core::splitByGroup(dataset, 0.01, 7).validation.size(), std::size_t(6));  // at least one volume
        QVERIFY(!inputError([&] { core::splitByGroup(dataset, 1.0, 7); }).isEmpty());

        core::Dataset single;
        single.cases.push_back({"only", "only", "ct.nii.gz", "liver.nii.gz"});
        const core::DatasetSplit alone = core::splitByGroup(single, 0.2, 1);
        QCOMPARE(alone.training.size(), std::size_t(1));
        QVERIFY(alone.validation.empty());
    }
};

QTEST_APPLESS_MAIN(DatasetTest)
#include "test_dataset.moc"

// The on-disk slice cache: what a prepared slice holds, triples at the edges, orientation,
// resampling, liver labels, reuse vs rebuild, and bounded resident memory.
#include "core/DatasetPicture.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/SliceCache.h"

#include <QTemporaryDir>
#include <QtTest>

#include <fstream>
#include <functional>
#include <sstream>

using namespace liverseg;
namespace fs = std::filesystem;

namespace {

core::Geometry geometry(std::size_t nx, std::size_t ny, std::size_t nz, double spacing = 1.5) {
    core::Geometry g;
    g.size = {nx, ny, nz};
    g.spacing = Eigen::Vector3d(spacing, spacing, 2.0);
    return g;
}

// A case folder holding ct.nii + liver.nii built by `fill(ct, labels)`.
core::DatasetCase writeCase(const fs::path& folder, const core::Geometry& g,
                            const std::function<void(core::CtVolume&, core::LabelMap&)>& fill) {
    fs::create_directories(folder);
    core::CtVolume ct(g, 0);
    core::LabelMap labels(g, 0);
    fill(ct, labels);
    core::writeCtVolume(ct, folder / "ct.nii");
    core::writeLabelMap(labels, folder / "liver.nii");
    return {folder.filename().string(), folder.filename().string(), folder / "ct.nii", folder / "liver.nii"};
}

core::Dataset datasetOf(std::vector<core::DatasetCase> cases, core::DatasetLayout layout = core::DatasetLayout::CasePairs) {
    core::Dataset dataset;
    dataset.layout = layout;
    dataset.cases = std::move(cases);
    return dataset;
}

// Window [0, 255] HU: a HU value v is stored as grey v.
core::SlicePreparation identityWindow(int side) {
    core::SlicePreparation preparation;
    preparation.windowLowHu = 0;
    preparation.windowHighHu = 255;
    preparation.pixelSpacingMm = 1.5;
    preparation.side = side;
    return preparation;
}

std::vector<float> sample(const core::SliceCache& cache, std::size_t caseIndex, std::size_t z, int context,
                          std::vector<float>* mask = nullptr) {
    const std::size_t plane = std::size_t(cache.side()) * std::size_t(cache.side());
    std::vector<float> image(plane * std::size_t(context));
    if (mask) mask->resize(plane);
    cache.readSample(caseIndex, z, context, image.data(), mask ? mask->data() : nullptr);
    return image;
}

template <typename Action>
QString inputError(Action action) {
    try {
        action();
    } catch (const core::InputError& error) {
        return QString::fromStdString(error.what());
    }
    return {};
}

long rssFileKiB() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("RssFile:", 0) == 0) return std::stol(line.substr(8));
    }
    return -1;
}

}  // namespace

class SliceCacheTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void triplesRepeatTheEdgeSlices() {
        QTemporaryDir dir;
        const auto item = writeCase(fs::path(dir.path().toStdString()) / "steps", geometry(8, 8, 5), [](auto& ct, auto& labels) {
            for (std::size_t z = 0; z < 5; ++z) std::fill(ct.slice(z), ct.slice(z) + 64, std::int16_t(10 * z));
            labels.at(2, 3, 4) = 1;
        });
        const core::SliceCache cache(datasetOf({item}), identityWindow(8), fs::path(dir.path().toStdString()) / "cache");
        QCOMPARE(cache.caseCount(), std::size_t(1));
        QCOMPARE(cache.totalSlices(), std::size_t(5));
        const auto grey = [&](std::size_t z, int context, int channel) { return sample(cache, 0, z, context)[std::size_t(channel) * 64 + 9] * 255.0f; };
        QCOMPARE(grey(0, 3, 0), 0.0f);  // z = -1 repeats slice 0
        QCOMPARE(grey(0, 3, 1), 0.0f);
        QCOMPARE(grey(0, 3, 2), 10.0f);
        QCOMPARE(grey(4, 3, 0), 30.0f);
        QCOMPARE(grey(4, 3, 1), 40.0f);
        QCOMPARE(grey(4, 3, 2), 40.0f);  // z = 5 repeats slice 4
        for (int channel = 0; channel < 5; ++channel) QCOMPARE(grey(2, 5, channel), 10.0f * float(channel));
        std::vector<float> mask;
        sample(cache, 0, 4, 3, &mask);
        QCOMPARE(mask[3 * 8 + 2], 1.0f);
        QCOMPARE(std::count(mask.begin(), mask.end(), 1.0f), 1L);
        QCOMPARE(cache.caseAt(0).liverPixels(4), 1u);
        QCOMPARE(cache.caseAt(0).liverPixels(3), 0u);
    }

    void slicesAreShownRadiologicallyWhateverTheStorageOrder() {
        // The same anatomy stored LPS and with every axis reversed gives identical slices.
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        const auto marker = [](std::size_t x, std::size_t y, std::size_t z) { return std::int16_t(x * 3 + y * 20 + z * 7); };
        const auto lps = writeCase(root / "lps", geometry(8, 8, 3), [&](auto& ct, auto& labels) {
            for (std::size_t z = 0; z < 3; ++z)
                for (std::size_t y = 0; y < 8; ++y)
                    for (std::size_t x = 0; x < 8; ++x) ct.at(x, y, z) = marker(x, y, z);
            labels.at(1, 0, 0) = 1;
        });
        core::Geometry reversed = geometry(8, 8, 3);
        reversed.direction = -Eigen::Matrix3d::Identity();
        reversed.origin = Eigen::Vector3d(7 * 1.5, 7 * 1.5, 2 * 2.0);
        const auto flipped = writeCase(root / "flipped", reversed, [&](auto& ct, auto& labels) {
            for (std::size_t z = 0; z < 3; ++z)
                for (std::size_t y = 0; y < 8; ++y)
                    for (std::size_t x = 0; x < 8; ++x) ct.at(x, y, z) = marker(7 - x, 7 - y, 2 - z);
            labels.at(6, 7, 2) = 1;
        });
        const core::SliceCache cache(datasetOf({lps, flipped}), identityWindow(8), root / "cache");
        for (std::size_t z = 0; z < 3; ++z) {
            std::vector<float> maskA, maskB;
            QCOMPARE(sample(cache, 0, z, 3, &maskA), sample(cache, 1, z, 3, &maskB));
            QCOMPARE(maskA, maskB);
        }
        QCOMPARE(sample(cache, 0, 0, 1)[1] * 255.0f, 3.0f);  // LPS: column 1 is x = 1
    }

    void planesAreResampledToTheSpacingThenCentred() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        // 40 x 40 pixels of 0.75 mm with a 20 x 20 liver square: 20 x 20 at 1.5 mm, square 10 x 10.
        const auto item = writeCase(root / "fine", geometry(40, 40, 1, 0.75), [](auto& ct, auto& labels) {
            std::fill(ct.voxels().begin(), ct.voxels().end(), std::int16_t(255));
            for (std::size_t y = 10; y < 30; ++y)
                for (std::size_t x = 10; x < 30; ++x) labels.at(x, y, 0) = 1;
        });
        const core::SliceCache padded(datasetOf({item}), identityWindow(32), root / "cache32");
        QCOMPARE(padded.caseAt(0).liverPixels(0), 100u);
        const auto image = sample(padded, 0, 0, 1);
        QCOMPARE(image[0], 0.0f);                 // padding outside the 20 x 20 field of view
        QCOMPARE(image[6 * 32 + 5], 0.0f);
        QCOMPARE(image[6 * 32 + 6], 1.0f);        // first pixel of the field of view
        QCOMPARE(image[16 * 32 + 16], 1.0f);
        QCOMPARE(image[25 * 32 + 26], 0.0f);

        const core::SliceCache cropped(datasetOf({item}), identityWindow(16), root / "cache16");
        QCOMPARE(cropped.caseAt(0).liverPixels(0), 100u);  // the centre survives the crop
        const auto inside = sample(cropped, 0, 0, 1);
        QVERIFY(std::all_of(inside.begin(), inside.end(), [](float v) { return v == 1.0f; }));
    }

    void liverLabelsChooseTheMaskValues() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        const auto item = writeCase(root / "organs", geometry(8, 8, 1), [](auto&, auto& labels) {
            for (std::size_t x = 0; x < 4; ++x) labels.at(x, 0, 0) = 1;
            for (std::size_t x = 0; x < 3; ++x) labels.at(x, 1, 0) = 2;
            for (std::size_t x = 0; x < 2; ++x) labels.at(x, 2, 0) = 5;
        });
        auto preparation = identityWindow(8);
        preparation.liverLabels = core::LiverLabels::parse("5");
        QCOMPARE(core::SliceCache(datasetOf({item}), preparation, root / "c5").caseAt(0).liverPixels(0), 2u);
        preparation.liverLabels = core::LiverLabels::parse("1,2");
        QCOMPARE(core::SliceCache(datasetOf({item}), preparation, root / "c12").caseAt(0).liverPixels(0), 7u);
        preparation.liverLabels = core::LiverLabels();
        const QString error = inputError([&] { core::SliceCache(datasetOf({item}), preparation, root / "cdefault"); });
        QVERIFY2(error.contains("more than two label values") && error.contains("--liver-labels"), qPrintable(error));
    }

    void unusableCasesAreInputErrors() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        auto item = writeCase(root / "offgrid", geometry(8, 8, 2), [](auto&, auto&) {});
        core::writeLabelMap(core::LabelMap(geometry(8, 8, 2, 1.0), 0), item.mask);
        QVERIFY(inputError([&] { core::SliceCache(datasetOf({item}), identityWindow(8), root / "c1"); })
                    .contains("does not lie on the CT's voxel grid"));

        core::Geometry sagittal = geometry(8, 8, 2);
        sagittal.direction << 0, 0, 1, 1, 0, 0, 0, 1, 0;
        const auto sideways = writeCase(root / "sagittal", sagittal, [](auto&, auto&) {});
        QVERIFY(inputError([&] { core::SliceCache(datasetOf({sideways}), identityWindow(8), root / "c2"); }).contains("not axial"));

        item.image = root / "missing.nii.gz";
        QVERIFY(!inputError([&] { core::SliceCache(datasetOf({item}), identityWindow(8), root / "c3"); }).isEmpty());
    }

    void picturesAreCasesOfOneSlice() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        core::Picture image{16, 16, 3, std::vector<std::uint8_t>(16 * 16 * 3, 90)};
        core::Picture mask{16, 16, 1, std::vector<std::uint8_t>(16 * 16, 127)};
        std::fill(mask.pixels.begin(), mask.pixels.begin() + 16 * 4, std::uint8_t(128));  // 4 rows >= 128
        fs::create_directories(root / "images");
        fs::create_directories(root / "masks");
        core::writePng(image, root / "images" / "7_1.png");
        core::writePng(mask, root / "masks" / "7_1.png");
        const core::SliceCache cache(datasetOf({{"7_1", "7", root / "images" / "7_1.png", root / "masks" / "7_1.png"}},
                                               core::DatasetLayout::Slices2D),
                                     identityWindow(16), root / "cache");
        QCOMPARE(cache.caseAt(0).sliceCount(), std::size_t(1));
        std::vector<float> liver;
        const auto triple = sample(cache, 0, 0, 3, &liver);
        QVERIFY(std::all_of(triple.begin(), triple.end(), [](float v) { return v == 90.0f / 255.0f; }));
        QCOMPARE(std::count(liver.begin(), liver.end(), 1.0f), 64L);

        core::writePng(core::Picture{16, 8, 1, std::vector<std::uint8_t>(16 * 8, 0)}, root / "masks" / "7_1.png");
        QVERIFY(inputError([&] {
                    core::SliceCache(datasetOf({{"7_1", "7", root / "images" / "7_1.png", root / "masks" / "7_1.png"}},
                                               core::DatasetLayout::Slices2D),
                                     identityWindow(16), root / "cache2");
                }).contains("mask is 16x8 but its picture is 16x16"));
    }

    void reusedWhileUnchangedRebuiltWhenSettingsOrSourcesChange() {
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString(), cacheFolder = root / "cache";
        const auto fill = [](auto& ct, auto& labels) {
            std::fill(ct.voxels().begin(), ct.voxels().end(), std::int16_t(100));
            labels.at(4, 4, 1) = 1;
        };
        const auto a = writeCase(root / "a", geometry(8, 8, 3), fill);
        const auto b = writeCase(root / "b", geometry(8, 8, 3), fill);
        const core::Dataset dataset = datasetOf({a, b});
        {
            const core::SliceCache first(dataset, identityWindow(8), cacheFolder);
            QCOMPARE(first.builtCount(), std::size_t(2));
        }
        const fs::path fileA = core::cacheFileFor(a, cacheFolder), fileB = core::cacheFileFor(b, cacheFolder);
        const auto stamp = fs::last_write_time(fileA);
        {
            const core::SliceCache again(dataset, identityWindow(8), cacheFolder);
            QCOMPARE(again.reusedCount(), std::size_t(2));
            QCOMPARE(again.builtCount(), std::size_t(0));
            QCOMPARE(sample(again, 0, 1, 1)[0] * 255.0f, 100.0f);
        }
        QCOMPARE(fs::last_write_time(fileA), stamp);

        auto wider = identityWindow(8);
        wider.windowHighHu = 510;
        {
            const core::SliceCache rebuilt(dataset, wider, cacheFolder);
            QCOMPARE(rebuilt.builtCount(), std::size_t(2));
            QCOMPARE(sample(rebuilt, 0, 1, 1)[0] * 255.0f, 50.0f);
        }
        // A source file that changed (here only its modification time) rebuilds its case only.
        fs::last_write_time(b.image, fs::last_write_time(b.image) + std::chrono::seconds(5));
        {
            const core::SliceCache touched(dataset, wider, cacheFolder);
            QCOMPARE(touched.builtCount(), std::size_t(1));
            QCOMPARE(touched.reusedCount(), std::size_t(1));
        }
        // A damaged cache file is rebuilt, not trusted.
        fs::resize_file(fileB, 100);
        {
            const core::SliceCache repaired(dataset, wider, cacheFolder);
            QCOMPARE(repaired.builtCount(), std::size_t(1));
            QCOMPARE(sample(repaired, 1, 1, 1)[0] * 255.0f, 50.0f);
        }
        // Atomic writes leave no temporaries behind.
        for (const auto& entry : fs::directory_iterator(cacheFolder)) {
            QVERIFY2(entry.path().filename().string().front() != '.', entry.path().c_str());
        }
        QVERIFY(!inputError([] { core::CachedCase(fs::path("/nonexistent.slices")); }).isEmpty());
    }

    void residentMemoryStaysWithinTheBudget() {
        // 4 cases x 48 slices x 256 x 256 x 2 bytes = 24 MiB of cache; a 2 MiB budget.
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        std::vector<core::DatasetCase> cases;
        for (int i = 0; i < 4; ++i) {
            cases.push_back(writeCase(root / ("case" + std::to_string(i)), geometry(256, 256, 48), [i](auto& ct, auto& labels) {
                for (std::size_t v = 0; v < ct.voxelCount(); ++v) ct.voxels()[v] = std::int16_t((v * 7 + std::size_t(i)) % 256);
                labels.at(100, 100, 10) = 1;
            }));
        }
        const core::Dataset dataset = datasetOf(cases);
        const auto readEverything = [&](std::size_t budget) {
            core::SliceCache cache(dataset, identityWindow(256), root / "cache");
            cache.setResidentBudget(budget);
            const long baseline = rssFileKiB();
            long peak = baseline;
            std::vector<float> image(3 * 256 * 256), mask(256 * 256);
            for (std::size_t c = 0; c < cache.caseCount(); ++c) {
                for (std::size_t z = 0; z < cache.caseAt(c).sliceCount(); ++z) {
                    cache.readSample(c, z, 3, image.data(), mask.data());
                    peak = std::max(peak, rssFileKiB());
                }
            }
            return peak - baseline;
        };
        if (rssFileKiB() < 0) QSKIP("no RssFile in /proc/self/status");
        const long unbounded = readEverything(std::size_t(1) << 30);
        const long bounded = readEverything(std::size_t(2) << 20);
        QVERIFY2(unbounded > 20 * 1024, qPrintable(QString("unbounded growth %1 KiB").arg(unbounded)));
        // The kernel maps pages around each fault (fault-around, 64 KiB): up to about twice
        // the bytes accounted are resident.
        QVERIFY2(bounded < 6 * 1024, qPrintable(QString("bounded growth %1 KiB").arg(bounded)));
    }
};

QTEST_APPLESS_MAIN(SliceCacheTest)
#include "test_dataset_cache.moc"

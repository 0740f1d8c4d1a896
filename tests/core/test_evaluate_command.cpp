// `liverseg evaluate` end to end: files and folders, label selection, JSON/CSV output.
#include "core/ImageIO.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

using namespace liverseg;

namespace {
core::LabelMap box(std::size_t x0, std::size_t x1, std::uint8_t label) {
    core::Geometry g;
    g.size = {12, 10, 6};
    g.spacing = Eigen::Vector3d(1.0, 1.0, 2.0);
    core::LabelMap m(g, 0);
    for (std::size_t z = 1; z < 5; ++z)
        for (std::size_t y = 2; y < 8; ++y)
            for (std::size_t x = x0; x < x1; ++x) m.at(x, y, z) = label;
    return m;
}
}  // namespace

class EvaluateCommandTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void foldersAreMatchedByNameAndScored() {
        QTemporaryDir dir;
        QDir(dir.path()).mkdir("pred");
        QDir(dir.path()).mkdir("ref");
        // case a: perfect; case b: shifted by one voxel in x (4 wide boxes: Dice 2*3*24/(2*4*24) = 0.75).
        core::writeLabelMap(box(2, 6, 1), dir.filePath("pred/a.nii.gz").toStdString());
        core::writeLabelMap(box(2, 6, 5), dir.filePath("ref/a.nii.gz").toStdString());
        core::writeLabelMap(box(3, 7, 1), dir.filePath("pred/b.nii.gz").toStdString());
        core::writeLabelMap(box(2, 6, 5), dir.filePath("ref/b.nii.gz").toStdString());
        const test::ProcessResult result =
            test::runLiverseg({"evaluate", "--pred", dir.filePath("pred"), "--ref", dir.filePath("ref"), "--liver-labels",
                               "5", "--json", dir.filePath("scores.json"), "--csv", dir.filePath("scores.csv")});
        QVERIFY2(result.exitCode == 0, qPrintable(result.err));
        QVERIFY(result.out.contains("global Dice"));
        const auto json = nlohmann::json::parse(test::readBytes(dir.filePath("scores.json").toStdString()));
        QCOMPARE(json["cases"].size(), std::size_t(2));
        QCOMPARE(json["cases"][0]["dice"].get<double>(), 1.0);
        QCOMPARE(json["cases"][1]["dice"].get<double>(), 0.75);
        QCOMPARE(json["cases"][1]["mssd_mm"].get<double>(), 1.0);
        QCOMPARE(json["cases"][1]["reference_ml"].get<double>(), 4 * 6 * 4 * 2.0 / 1000);
        QCOMPARE(json["summary"]["dice"]["mean"].get<double>(), 0.875);
        // Pooled: intersections 96 + 72, sizes 192 + 192.
        QCOMPARE(json["summary"]["global_dice"].get<double>(), 2.0 * 168 / 384);
        QVERIFY(test::readBytes(dir.filePath("scores.csv").toStdString()).rfind("case,dice,", 0) == 0);
    }

    void wrongLabelSelectionGivesAnEmptyReference() {
        QTemporaryDir dir;
        core::writeLabelMap(box(2, 6, 1), dir.filePath("p.nii.gz").toStdString());
        core::writeLabelMap(box(2, 6, 5), dir.filePath("r.nii.gz").toStdString());
        const test::ProcessResult result = test::runLiverseg(
            {"evaluate", "--pred", dir.filePath("p.nii.gz"), "--ref", dir.filePath("r.nii.gz"), "--liver-labels", "1,2",
             "--json", dir.filePath("s.json")});
        QCOMPARE(result.exitCode, 0);
        const auto json = nlohmann::json::parse(test::readBytes(dir.filePath("s.json").toStdString()));
        QCOMPARE(json["cases"][0]["dice"].get<double>(), 0.0);
        QVERIFY(json["cases"][0]["assd_mm"].is_null());
        QVERIFY(json["cases"][0]["rvd"].is_null());
    }

    void mismatchedGridsAndMissingFilesExit2() {
        QTemporaryDir dir;
        core::writeLabelMap(box(2, 6, 1), dir.filePath("p.nii.gz").toStdString());
        core::LabelMap other = box(2, 6, 1);
        core::Geometry g = other.geometry();
        g.origin[0] = 5;
        core::writeLabelMap(core::LabelMap(g, other.voxels()), dir.filePath("r.nii.gz").toStdString());
        for (const QStringList& arguments :
             {QStringList{"evaluate", "--pred", dir.filePath("p.nii.gz"), "--ref", dir.filePath("r.nii.gz")},
              QStringList{"evaluate", "--pred", dir.filePath("p.nii.gz"), "--ref", dir.filePath("absent.nii.gz")},
              QStringList{"evaluate", "--pred", dir.filePath("p.nii.gz"), "--ref", dir.path()},
              QStringList{"evaluate", "--pred", dir.filePath("p.nii.gz")}}) {
            const test::ProcessResult result = test::runLiverseg(arguments);
            QVERIFY(!result.crashed);
            QCOMPARE(result.exitCode, 2);
            QCOMPARE(result.err.trimmed().count('\n'), 0);
        }
    }
};

QTEST_GUILESS_MAIN(EvaluateCommandTest)
#include "test_evaluate_command.moc"

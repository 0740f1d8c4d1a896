// Data-parallel training (nn/Distributed.h): settings from torchrun's variables, sharding
// as DistributedSampler does, and real 2-process runs on 127.0.0.1 (tests/nn/
// distributed_worker.cpp) whose ranks must end bitwise equal and match one process.
#include "core/Errors.h"
#include "nn/Checkpoint.h"
#include "nn/Distributed.h"
#include "nn/Threads.h"
#include "tests/nn/DistributedScenario.h"
#include "tests/nn/NnTestSupport.h"
#include "tests/support/TestSupport.h"

#include <QElapsedTimer>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

using namespace liverseg;

namespace {

using Environment = std::map<std::string, std::string>;

nn::DistributedSettings parse(const Environment& environment) {
    return nn::parseDistributedSettings([&](const std::string& name) -> std::optional<std::string> {
        const auto found = environment.find(name);
        if (found == environment.end()) return std::nullopt;
        return found->second;
    });
}

QString parseError(const Environment& environment) {
    try {
        parse(environment);
    } catch (const core::InputError& error) {
        return QString::fromUtf8(error.what());
    }
    return {};
}

// A worker process with torchrun's variables set (and any inherited ones removed).
std::unique_ptr<QProcess> startWorker(const QStringList& arguments, const Environment& environment) {
    QProcessEnvironment processEnvironment = QProcessEnvironment::systemEnvironment();
    for (const char* name : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                             "LIVERSEG_DIST_TIMEOUT", "LIVERSEG_DIST_OP_TIMEOUT", "GLOO_SOCKET_IFNAME",
                             "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT"}) {
        processEnvironment.remove(name);
    }
    for (const auto& [name, value] : environment) {
        processEnvironment.insert(QString::fromStdString(name), QString::fromStdString(value));
    }
    auto process = std::make_unique<QProcess>();
    process->setProcessEnvironment(processEnvironment);
    process->start(QString::fromUtf8(LIVERSEG_DISTRIBUTED_WORKER), arguments);
    if (!process->waitForStarted(10000)) qFatal("the distributed worker did not start");
    return process;
}

struct Finished {
    int exitCode = -1;
    bool crashed = false;
    bool timedOut = false;
    QString err;
};

Finished finish(QProcess& process, int timeoutMs) {
    Finished result;
    if (!process.waitForFinished(timeoutMs)) {
        result.timedOut = true;
        process.kill();
        process.waitForFinished(5000);
    }
    result.crashed = process.exitStatus() != QProcess::NormalExit;
    result.exitCode = process.exitCode();
    result.err = QString::fromUtf8(process.readAllStandardError());
    return result;
}

Environment rankEnvironment(int rank, int worldSize, int port) {
    return {{"WORLD_SIZE", std::to_string(worldSize)},
            {"RANK", std::to_string(rank)},
            {"LOCAL_RANK", std::to_string(rank)},
            {"MASTER_ADDR", "127.0.0.1"},
            {"MASTER_PORT", std::to_string(port)},
            {"LIVERSEG_DIST_TIMEOUT", "30"},
            {"LIVERSEG_DIST_OP_TIMEOUT", "60"}};
}

struct RankResult {
    nn::StateDict weights;
    nlohmann::json report;
};

// Runs the scenario on two ranks; fails the test (returns empty) unless both succeed.
std::vector<RankResult> runTwoRanks(const QTemporaryDir& folder, const QStringList& extraArguments) {
    const int port = test::freeLoopbackPort();
    QStringList arguments{"scenario", "--out", folder.path()};
    arguments += extraArguments;
    std::vector<std::unique_ptr<QProcess>> processes;
    for (int rank = 0; rank < 2; ++rank) processes.push_back(startWorker(arguments, rankEnvironment(rank, 2, port)));
    std::vector<RankResult> results;
    for (int rank = 0; rank < 2; ++rank) {
        const Finished finished = finish(*processes[std::size_t(rank)], 120000);
        if (finished.timedOut || finished.crashed || finished.exitCode != 0) {
            qWarning("rank %d: exit %d%s%s: %s", rank, finished.exitCode, finished.crashed ? " (crashed)" : "",
                     finished.timedOut ? " (timed out)" : "", qPrintable(finished.err));
            return {};
        }
        const std::filesystem::path base = folder.filePath("rank" + QString::number(rank)).toStdString();
        RankResult result;
        result.weights = nn::readStateDictFile(base.string() + ".pt");
        std::ifstream(base.string() + ".json") >> result.report;
        results.push_back(std::move(result));
    }
    return results;
}

bool bitwiseEqual(const nn::StateDict& a, const nn::StateDict& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t index = 0; index < a.size(); ++index) {
        if (a[index].key() != b[index].key() || !torch::equal(a[index].value(), b[index].value())) return false;
    }
    return true;
}

// Largest |a - b| / (|b| + 1e-3) over every entry of every tensor, and where.
std::pair<double, std::string> largestRelativeDifference(const nn::StateDict& a, const nn::StateDict& b) {
    std::pair<double, std::string> largest{0.0, ""};
    for (std::size_t index = 0; index < b.size(); ++index) {
        const torch::Tensor x = a[index].value().to(torch::kDouble);
        const torch::Tensor y = b[index].value().to(torch::kDouble);
        const double difference = ((x - y).abs() / (y.abs() + 1e-3)).max().item<double>();
        if (difference > largest.first) largest = {difference, b[index].key()};
    }
    return largest;
}

// Per tensor: |(a - start) - (b - start)| / |b - start| (norms over the tensor): how far the
// training update that led to `a` is from the one that led to `b`. The largest, and where.
std::pair<double, std::string> largestUpdateDifference(const nn::StateDict& a, const nn::StateDict& b,
                                                        const nn::StateDict& start) {
    std::pair<double, std::string> largest{0.0, ""};
    for (std::size_t index = 0; index < b.size(); ++index) {
        const torch::Tensor x = a[index].value().to(torch::kDouble);
        const torch::Tensor y = b[index].value().to(torch::kDouble);
        const torch::Tensor update = y - start[index].value().to(torch::kDouble);
        if (update.norm().item<double>() == 0.0) continue;
        const double difference = ((x - y).norm() / update.norm()).item<double>();
        if (difference > largest.first) largest = {difference, b[index].key()};
    }
    return largest;
}

double maxAbsDifference(const nn::StateDict& a, const nn::StateDict& b) {
    double largest = 0.0;
    for (std::size_t index = 0; index < b.size(); ++index) {
        largest = std::max(largest, test::maxAbsDifference(a[index].value(), b[index].value()));
    }
    return largest;
}

bool sameParameters(const nn::StateDict& a, const nn::StateDict& b) {
    for (std::size_t index = 0; index < b.size(); ++index) {
        if (!torch::equal(a[index].value(), b[index].value())) return false;
    }
    return true;
}

}  // namespace

class TestDistributed : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { nn::setIntraOpThreads(1); }

    void settingsFollowTorchrunsVariables() {
        const nn::DistributedSettings single = parse({});
        QCOMPARE(single.worldSize, 1);
        QCOMPARE(single.rank, 0);
        QVERIFY(!single.isDistributed());

        const nn::DistributedSettings rankOne = parse({{"WORLD_SIZE", "4"},
                                                       {"RANK", "1"},
                                                       {"LOCAL_RANK", "1"},
                                                       {"LOCAL_WORLD_SIZE", "2"},
                                                       {"MASTER_ADDR", "node0.example"},
                                                       {"MASTER_PORT", "29511"},
                                                       {"LIVERSEG_DIST_TIMEOUT", "5"},
                                                       {"GLOO_SOCKET_IFNAME", "eth1"}});
        QCOMPARE(rankOne.worldSize, 4);
        QCOMPARE(rankOne.rank, 1);
        QCOMPARE(rankOne.localRank, 1);
        QCOMPARE(rankOne.localWorldSize, 2);
        QCOMPARE(single.localWorldSize, 1);
        QCOMPARE(rankOne.masterAddress, std::string("node0.example"));
        QCOMPARE(rankOne.masterPort, 29511);
        QCOMPARE(rankOne.connectTimeout.count(), 5000LL);
        QCOMPARE(rankOne.glooInterface, std::string("eth1"));
        QVERIFY(!rankOne.agentHostsStore);
        const nn::DistributedSettings underTorchrun = parse({{"WORLD_SIZE", "2"},
                                                             {"RANK", "0"},
                                                             {"MASTER_ADDR", "h"},
                                                             {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                                             {"TORCHELASTIC_RESTART_COUNT", "3"}});
        QVERIFY(underTorchrun.agentHostsStore);
        QCOMPARE(underTorchrun.storePrefix, std::string("/worker/attempt_3"));
        QVERIFY(rankOne.isDistributed());
        // torchrun's default port.
        QCOMPARE(parse({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "h"}}).masterPort, 29500);
    }

    void badSettingsSayWhichVariableIsWrong_data() {
        QTest::addColumn<QString>("assignments");
        QTest::addColumn<QString>("expected");
        QTest::newRow("rank not a number") << "WORLD_SIZE=2 RANK=one MASTER_ADDR=h" << "RANK='one' is not a whole number";
        QTest::newRow("rank too large") << "WORLD_SIZE=2 RANK=5 MASTER_ADDR=h" << "RANK=5 is outside 0-1 (WORLD_SIZE=2)";
        QTest::newRow("negative rank") << "WORLD_SIZE=2 RANK=-1 MASTER_ADDR=h" << "RANK=-1 is outside 0-1";
        QTest::newRow("rank missing") << "WORLD_SIZE=2 MASTER_ADDR=h" << "RANK is not set (WORLD_SIZE=2)";
        QTest::newRow("world size zero") << "WORLD_SIZE=0" << "WORLD_SIZE=0 is outside 1-";
        QTest::newRow("world size text") << "WORLD_SIZE=2x" << "WORLD_SIZE='2x' is not a whole number";
        QTest::newRow("master missing") << "WORLD_SIZE=2 RANK=1" << "MASTER_ADDR is not set (WORLD_SIZE=2)";
        QTest::newRow("port too large") << "WORLD_SIZE=2 RANK=1 MASTER_ADDR=h MASTER_PORT=70000"
                                        << "MASTER_PORT=70000 is outside 1-65535";
        QTest::newRow("local rank") << "WORLD_SIZE=2 RANK=1 LOCAL_RANK=2 MASTER_ADDR=h" << "LOCAL_RANK=2 is outside 0-1";
        QTest::newRow("local world size") << "WORLD_SIZE=2 RANK=1 LOCAL_WORLD_SIZE=3 MASTER_ADDR=h"
                                          << "LOCAL_WORLD_SIZE=3 is outside 1-2";
        QTest::newRow("timeout") << "WORLD_SIZE=2 RANK=1 MASTER_ADDR=h LIVERSEG_DIST_TIMEOUT=0"
                                 << "LIVERSEG_DIST_TIMEOUT=0 is outside 1-";
        QTest::newRow("single process, bad rank") << "RANK=3" << "RANK=3 is outside 0-0";
    }
    void badSettingsSayWhichVariableIsWrong() {
        QFETCH(QString, assignments);
        QFETCH(QString, expected);
        Environment environment;
        for (const QString& assignment : assignments.split(' ')) {
            const QStringList parts = assignment.split('=');
            environment[parts[0].toStdString()] = parts[1].toStdString();
        }
        const QString message = parseError(environment);
        QVERIFY2(message.contains(expected), qPrintable(message));
        QVERIFY(!message.contains('\n'));
    }

    void singleProcessIsANoOp() {
        nn::DistributedContext context;
        QVERIFY(!context.isDistributed());
        QVERIFY(context.isMain());
        QCOMPARE(context.backendName(), std::string("none"));
        test::DistributedScenario scenario;
        const nn::SegmentationNetwork network = test::scenarioNetwork(scenario, 1);
        const nn::StateDict before = nn::stateDict(*network);
        std::vector<torch::Tensor> copies;
        for (const auto& item : before) copies.push_back(item.value().clone());
        const torch::Tensor loss = test::scenarioLoss(*network, test::scenarioData(scenario), {0, 1});
        loss.backward();
        const torch::Tensor gradient = network->parameters().front().grad().clone();
        context.broadcastParameters(*network);
        context.broadcastBuffers(*network);
        context.allReduceGradients(*network);
        context.barrier();
        QVERIFY(torch::equal(network->parameters().front().grad(), gradient));
        QCOMPARE(context.allReduceMean(0.25), 0.25);
        QCOMPARE(context.allReduceSum({1.0, 2.0}), (std::vector<double>{1.0, 2.0}));
        QVERIFY(context.anyRank(true));
        QVERIFY(!context.anyRank(false));
        std::vector<std::int64_t> all = context.shardIndices(10, 3);
        std::sort(all.begin(), all.end());
        QCOMPARE(all, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    }

    void shardsAreEqualSizedDisjointAndPaddedFromTheStart() {
        const std::int64_t count = 10;
        const int worldSize = 3;
        std::vector<std::int64_t> together;
        for (int rank = 0; rank < worldSize; ++rank) {
            const std::vector<std::int64_t> shard = nn::shardIndices(count, 42, rank, worldSize);
            QCOMPARE(shard.size(), std::size_t(4));  // ceil(10 / 3)
            together.insert(together.end(), shard.begin(), shard.end());
        }
        // Every sample once, plus the permutation's first two again as padding.
        std::map<std::int64_t, int> seen;
        for (std::int64_t index : together) ++seen[index];
        QCOMPARE(seen.size(), std::size_t(count));
        QCOMPARE(nn::shardIndices(count, 42, 0, worldSize)[0], nn::shardIndices(count, 42, 0, 1)[0]);
        const std::vector<std::int64_t> order = nn::shardIndices(count, 42, 0, 1);
        for (const auto& [index, times] : seen) QCOMPARE(times, (index == order[0] || index == order[1]) ? 2 : 1);
        // Reproducible per epoch seed, different between epochs.
        QCOMPARE(nn::shardIndices(count, 42, 1, worldSize), nn::shardIndices(count, 42, 1, worldSize));
        QVERIFY(nn::shardIndices(count, 42, 1, worldSize) != nn::shardIndices(count, 43, 1, worldSize));
        // More ranks than samples: the permutation repeats.
        QCOMPARE(nn::shardIndices(2, 5, 3, 4).size(), std::size_t(1));
        QVERIFY(nn::shardIndices(0, 5, 0, 2).empty());
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, nn::shardIndices(5, 1, 2, 2));
    }

    void shardsMatchPyTorchsDistributedSampler() {
        const std::optional<QString> python = test::pythonWithTorch();
        if (!python) QSKIP("no python3 with torch");
        const QString script =
            "import json, torch.utils.data as d\n"
            "out = []\n"
            "for n, w, seed, epoch in [(10, 3, 5, 2), (7, 2, 0, 0), (3, 4, 11, 1), (64, 2, 1000, 1)]:\n"
            "    for r in range(w):\n"
            "        s = d.DistributedSampler(range(n), num_replicas=w, rank=r, shuffle=True, seed=seed)\n"
            "        s.set_epoch(epoch)\n"
            "        out.append(list(s))\n"
            "print(json.dumps(out))\n";
        QProcess process;
        process.start(*python, {"-c", script});
        QVERIFY(process.waitForFinished(120000));
        QCOMPARE(process.exitCode(), 0);
        const nlohmann::json expected = nlohmann::json::parse(process.readAllStandardOutput().toStdString());
        std::size_t row = 0;
        for (const auto& [count, worldSize, seed, epoch] :
             std::vector<std::tuple<int, int, int, int>>{{10, 3, 5, 2}, {7, 2, 0, 0}, {3, 4, 11, 1}, {64, 2, 1000, 1}}) {
            for (int rank = 0; rank < worldSize; ++rank) {
                const auto ours = nn::shardIndices(count, std::uint64_t(seed + epoch), rank, worldSize);
                QCOMPARE(ours, expected.at(row++).get<std::vector<std::int64_t>>());
            }
        }
    }

    // BatchNorm in training mode, as training runs. DDP's definition: each replica normalises
    // with its own batch's statistics, gradients are averaged, rank 0's running statistics
    // are kept. The reference does exactly that in one process (forward/backward per
    // half-batch, gradients averaged), so with two ranks the sums are the same two-term
    // float additions and the result is expected bitwise; the tolerance only absorbs a
    // different summation order in a future Gloo.
    void twoRanksEndIdenticalAndMatchOneProcessPerReplica() {
        QElapsedTimer timer;
        timer.start();
        QTemporaryDir folder;
        const std::vector<RankResult> ranks = runTwoRanks(folder, {});
        QCOMPARE(ranks.size(), std::size_t(2));
        QCOMPARE(ranks[0].report.at("backend").get<std::string>(), std::string("gloo"));
        QVERIFY2(bitwiseEqual(ranks[0].weights, ranks[1].weights), "ranks 0 and 1 hold different weights");
        QCOMPARE(ranks[0].report.at("losses"), ranks[1].report.at("losses"));

        test::DistributedScenario scenario;
        // Rank 1 starts from other random weights (initSeed + 1): only the broadcast of rank
        // 0's lets both ranks end equal to a reference that starts from rank 0's.
        const nn::SegmentationNetwork untrained = test::scenarioNetwork(scenario, scenario.initSeed);
        QVERIFY(!sameParameters(nn::stateDict(*test::scenarioNetwork(scenario, scenario.initSeed + 1)),
                                nn::stateDict(*untrained)));
        QVERIFY(!sameParameters(ranks[0].weights, nn::stateDict(*untrained)));
        const nn::SegmentationNetwork reference = test::scenarioNetwork(scenario, scenario.initSeed);
        const test::ScenarioRun expected = test::trainReferencePerReplica(scenario, *reference, 2);
        const auto [difference, where] = largestRelativeDifference(ranks[0].weights, nn::stateDict(*reference));
        qInfo("per-replica reference: largest relative difference %.3g (%s), %lld ms", difference, where.c_str(),
              qint64(timer.elapsed()));
        QVERIFY2(difference <= 1e-5, where.c_str());
        const std::vector<double> losses = ranks[0].report.at("losses").get<std::vector<double>>();
        QCOMPARE(losses.size(), expected.meanLosses.size());
        for (std::size_t step = 0; step < losses.size(); ++step) {
            QVERIFY(std::abs(losses[step] - expected.meanLosses[step]) <= 1e-6 * std::abs(expected.meanLosses[step]));
        }
        // The running statistics moved (and, by the comparison above, are rank 0's alone).
        QVERIFY(!torch::equal(ranks[0].weights["dconv.double_conv.1.running_mean"],
                              nn::stateDict(*untrained)["dconv.double_conv.1.running_mean"]));
    }

    // BatchNorm frozen (eval mode): samples no longer interact, so two ranks on half-batches
    // must equal one process on the combined batch. Only float32 rounding differs (a batch
    // of 4 vs two of 2 through the convolutions, one mean vs the mean of two means). Adam
    // normalises each gradient element by its own magnitude, so an element whose gradient is
    // a near-cancelling sum carries its relative rounding error into its update; but each
    // update is at most ~lr (1e-3), so after 4 steps every weight agrees to a few float32
    // ulps: we require 1e-5 relative (of |w| + 1e-3; measured 3e-6, max |difference|
    // 1.2e-7 = one ulp at 1.0) and every tensor's update to agree to 1e-3 of its norm
    // (measured 6e-5), while the weights moved by more than 1e-3 from their start.
    void twoRanksMatchOneProcessOnTheCombinedBatch() {
        QTemporaryDir folder;
        const std::vector<RankResult> ranks = runTwoRanks(folder, {"--frozen-batchnorm"});
        QCOMPARE(ranks.size(), std::size_t(2));
        QVERIFY2(bitwiseEqual(ranks[0].weights, ranks[1].weights), "ranks 0 and 1 hold different weights");

        test::DistributedScenario scenario;
        scenario.batchNormTrainMode = false;
        const nn::SegmentationNetwork reference = test::scenarioNetwork(scenario, scenario.initSeed);
        const test::ScenarioRun expected = test::trainReferenceCombined(scenario, *reference, 2);
        const auto [difference, where] = largestRelativeDifference(ranks[0].weights, nn::stateDict(*reference));
        qInfo("combined-batch reference: largest relative difference %.3g (%s)", difference, where.c_str());
        const nn::SegmentationNetwork start = test::scenarioNetwork(scenario, scenario.initSeed);
        const auto [updateDifference, updateWhere] =
            largestUpdateDifference(ranks[0].weights, nn::stateDict(*reference), nn::stateDict(*start));
        qInfo("update difference %.3g (%s), max abs %.3g", updateDifference, updateWhere.c_str(),
              maxAbsDifference(ranks[0].weights, nn::stateDict(*reference)));
        QVERIFY2(updateDifference <= 1e-3, updateWhere.c_str());
        QVERIFY2(difference <= 1e-5, where.c_str());
        QVERIFY(largestRelativeDifference(nn::stateDict(*start), nn::stateDict(*reference)).first > 1e-3);
        const std::vector<double> losses = ranks[0].report.at("losses").get<std::vector<double>>();
        for (std::size_t step = 0; step < losses.size(); ++step) {
            QVERIFY(std::abs(losses[step] - expected.meanLosses[step]) <= 1e-5 * std::abs(expected.meanLosses[step]));
        }
    }

    // torchrun itself as the launcher: its agent hosts the store and sets the variables.
    void torchrunCanLaunchTheRanks() {
        const std::optional<QString> python = test::pythonWithTorch();
        if (!python) QSKIP("no python3 with torch (torchrun)");
        QTemporaryDir folder;
        QProcess launcher;
        QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
        environment.insert("OMP_NUM_THREADS", "1");
        launcher.setProcessEnvironment(environment);
        // --redirects/--tee: Debian's torchrun (torch 1.13 on Python 3.11) fails on their
        // defaults ("0" parses to None), and 1 (stdout) is the value that still parses.
        launcher.start(*python, {"-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                                 "--master_addr=127.0.0.1", "--master_port=" + QString::number(test::freeLoopbackPort()),
                                 "--redirects=1", "--tee=1", "--no_python", QString::fromUtf8(LIVERSEG_DISTRIBUTED_WORKER), "scenario", "--out",
                                 folder.path()});
        const Finished finished = finish(launcher, 180000);
        QVERIFY2(!finished.timedOut && !finished.crashed && finished.exitCode == 0, qPrintable(finished.err));
        const nn::StateDict rankZero = nn::readStateDictFile(folder.filePath("rank0.pt").toStdString());
        const nn::StateDict rankOne = nn::readStateDictFile(folder.filePath("rank1.pt").toStdString());
        QVERIFY2(bitwiseEqual(rankZero, rankOne), "ranks 0 and 1 hold different weights");
        // The same training as the ranks this test starts itself.
        test::DistributedScenario scenario;
        const nn::SegmentationNetwork reference = test::scenarioNetwork(scenario, scenario.initSeed);
        test::trainReferencePerReplica(scenario, *reference, 2);
        QVERIFY(largestRelativeDifference(rankZero, nn::stateDict(*reference)).first <= 1e-5);
    }

    void rankOutsideTheWorldFailsAtOnceWithExitCode2() {
        QElapsedTimer timer;
        timer.start();
        QTemporaryDir folder;
        Environment environment = rankEnvironment(5, 2, test::freeLoopbackPort());
        const auto process = startWorker({"scenario", "--out", folder.path()}, environment);
        const Finished finished = finish(*process, 30000);
        QVERIFY(!finished.timedOut && !finished.crashed);
        QCOMPARE(finished.exitCode, 2);
        QVERIFY2(finished.err.contains("RANK=5 is outside 0-1 (WORLD_SIZE=2)"), qPrintable(finished.err));
        QCOMPARE(finished.err.trimmed().count('\n'), 0);
        QVERIFY(timer.elapsed() < 15000);
    }

    void unreachableMasterTimesOutWithExitCode2() {
        QTemporaryDir folder;
        Environment environment = rankEnvironment(1, 2, test::freeLoopbackPort());  // nobody hosts rank 0
        environment["LIVERSEG_DIST_TIMEOUT"] = "2";
        QElapsedTimer timer;
        timer.start();
        const auto process = startWorker({"scenario", "--out", folder.path()}, environment);
        const Finished finished = finish(*process, 60000);
        QVERIFY2(!finished.timedOut, "the worker hung");
        QCOMPARE(finished.exitCode, 2);
        QVERIFY2(finished.err.contains("could not reach rank 0 at MASTER_ADDR=127.0.0.1"), qPrintable(finished.err));
        // One line of ours (c10d logs its own socket error through glog before it).
        QCOMPARE(finished.err.count("distributed_worker:"), 1);
        QVERIFY(timer.elapsed() < 30000);
    }

    void masterWithoutPeersTimesOutWithExitCode2() {
        QTemporaryDir folder;
        Environment environment = rankEnvironment(0, 2, test::freeLoopbackPort());  // rank 1 never comes
        environment["LIVERSEG_DIST_TIMEOUT"] = "2";
        const auto process = startWorker({"scenario", "--out", folder.path()}, environment);
        const Finished finished = finish(*process, 60000);
        QVERIFY2(!finished.timedOut, "the worker hung");
        QCOMPARE(finished.exitCode, 2);
        QVERIFY2(finished.err.contains("rendezvous failed on rank 0: only 1 of WORLD_SIZE=2 processes joined within 2 s"),
                 qPrintable(finished.err));
    }

    void portInUseOnTheMasterIsAnInputError() {
        const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_ANY);
        socklen_t length = sizeof address;
        QVERIFY(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        QVERIFY(::listen(listener, 1) == 0);
        QVERIFY(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        QTemporaryDir folder;
        Environment environment = rankEnvironment(0, 2, ntohs(address.sin_port));
        environment["LIVERSEG_DIST_TIMEOUT"] = "2";
        const auto process = startWorker({"scenario", "--out", folder.path()}, environment);
        const Finished finished = finish(*process, 60000);
        ::close(listener);
        QVERIFY2(!finished.timedOut, "the worker hung");
        QCOMPARE(finished.exitCode, 2);
        QVERIFY2(finished.err.contains("could not host the store"), qPrintable(finished.err));
    }

    // A rank that dies mid-training makes the other fail with an error, not hang or crash.
    void peerThatStopsMidTrainingIsAnErrorNotAHang() {
        QTemporaryDir folder;
        const int port = test::freeLoopbackPort();
        const QStringList arguments{"scenario", "--out", folder.path()};
        const auto rankZero = startWorker(arguments, rankEnvironment(0, 2, port));
        const auto rankOne = startWorker(arguments + QStringList{"--stop-after-steps", "2"}, rankEnvironment(1, 2, port));
        const Finished one = finish(*rankOne, 60000);
        QCOMPARE(one.exitCode, 3);
        const Finished zero = finish(*rankZero, 90000);
        QVERIFY2(!zero.timedOut, "rank 0 hung after rank 1 stopped");
        QVERIFY2(!zero.crashed, qPrintable(zero.err));
        QCOMPARE(zero.exitCode, 1);
        QVERIFY2(zero.err.contains("did another rank stop?"), qPrintable(zero.err));
    }
};

QTEST_GUILESS_MAIN(TestDistributed)
#include "test_distributed.moc"

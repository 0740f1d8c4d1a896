#pragma once
// Data-parallel training across processes (one per host or GPU) on PyTorch's own
// distributed engine, c10d: the processes meet through a c10d::TCPStore that rank 0 hosts,
// then average gradients with ProcessGroupGloo (CPU tensors; ProcessGroupNCCL for CUDA
// tensors where this LibTorch was built with NCCL; Debian's LibTorch is CPU-only).
//
// The processes are configured like `torchrun` configures them, by environment variables:
//   WORLD_SIZE   number of processes (absent or 1: a single process, every call a no-op)
//   RANK         this process, 0 .. WORLD_SIZE-1 (rank 0 hosts the store)
//   LOCAL_RANK   this process among those on its host (picks the GPU); default 0
//   LOCAL_WORLD_SIZE  processes on this host (they share its cores); default 1
//   MASTER_ADDR  host name or address of rank 0, reachable from every process
//   MASTER_PORT  TCP port rank 0 listens on for the rendezvous (default 29500)
//   LIVERSEG_DIST_TIMEOUT     seconds to wait for the rendezvous (default 60)
//   LIVERSEG_DIST_OP_TIMEOUT  seconds one collective may wait for a slow peer (default 1800)
//   GLOO_SOCKET_IFNAME        network interface Gloo uses for the data (as in PyTorch)
// Launched by torchrun itself (TORCHELASTIC_USE_AGENT_STORE=True), torchrun's agent hosts the
// store and every rank connects to it, under /worker/attempt_<TORCHELASTIC_RESTART_COUNT>/,
// as torch.distributed does.
//
// What keeps the ranks identical (the equivalent of DistributedDataParallel's defaults):
//   - broadcastParameters() once at the start: every rank starts from rank 0's weights and
//     BatchNorm statistics;
//   - allReduceGradients() after every backward: every rank applies the same averaged
//     gradient, so the same optimizer step keeps the parameters bitwise equal;
//   - broadcastBuffers() before every forward, as DDP (broadcast_buffers=True) does: each
//     rank normalises with its own batch statistics in training mode, and rank 0's running
//     statistics are the ones kept. Calling it right after each backward (next to
//     allReduceGradients) is the same thing and also leaves every rank holding exactly rank
//     0's model at validation and saving; otherwise call it once more before those.
// Every rank must make the same sequence of collective calls (same number of steps, same
// model): shardIndices() gives every rank the same number of samples for that reason.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace liverseg::nn {

// A collective failed after the processes had met: a peer stopped or the network broke.
// (Bad settings and an unreachable rendezvous are core::InputError.)
class DistributedError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct DistributedSettings {
    int worldSize = 1;
    int rank = 0;
    int localRank = 0;
    int localWorldSize = 1;
    std::string masterAddress;
    int masterPort = 29500;
    // How long the rendezvous may take before the processes give up (no infinite hang when
    // the master is unreachable or a rank never starts).
    std::chrono::milliseconds connectTimeout{std::chrono::seconds(60)};
    // How long one collective waits for the slowest rank (rank 0 validating or saving
    // while the others wait at the next step); PyTorch's default.
    std::chrono::milliseconds operationTimeout{std::chrono::minutes(30)};
    // Gradients are averaged in flat buckets of at most this many bytes (DDP's 25 MB).
    std::size_t gradientBucketBytes = 25u << 20;
    // "cpu" -> Gloo; "cuda:N" -> NCCL (only in a LibTorch built with CUDA and NCCL).
    torch::Device device = torch::kCPU;
    // Gloo's interface (GLOO_SOCKET_IFNAME); empty: loopback when MASTER_ADDR is a loopback
    // address, otherwise this host's address on its route to MASTER_ADDR.
    std::string glooInterface;
    // torchrun's agent hosts the store (rank 0 does not); keys go under this prefix.
    bool agentHostsStore = false;
    std::string storePrefix;

    bool isDistributed() const { return worldSize > 1; }
};

// Reads the variables above through `lookup` (name -> value when set). Throws
// core::InputError naming the variable and what is wrong: not a whole number, RANK,
// LOCAL_RANK or LOCAL_WORLD_SIZE out of range, MASTER_ADDR missing, a port outside 1-65535, a bad timeout.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;
DistributedSettings parseDistributedSettings(const EnvironmentLookup& lookup);
// The same from this process's environment.
DistributedSettings distributedSettingsFromEnvironment();

// The sample indices rank `rank` of `worldSize` handles in the epoch seeded by `epochSeed`,
// exactly as PyTorch's DistributedSampler(shuffle=True, drop_last=False) with
// seed + epoch == epochSeed: a permutation of 0..count-1 from torch.randperm with a
// generator seeded by epochSeed, padded by repeating its start up to a multiple of
// worldSize, then every worldSize-th index starting at `rank`. Every rank gets
// ceil(count / worldSize) indices; the shares are disjoint except for the padding (at most
// worldSize - 1 samples appear twice per epoch). count 0 gives an empty share.
std::vector<std::int64_t> shardIndices(std::int64_t count, std::uint64_t epochSeed, int rank, int worldSize);

class DistributedContext {
public:
    // A single process (worldSize 1): every collective is a no-op.
    DistributedContext();
    // Meets the other processes (blocks until all WORLD_SIZE have arrived, at most
    // settings.connectTimeout). Ignores SIGPIPE in this process: a peer that vanishes must
    // surface as a DistributedError, not end this process with a signal. Throws core::InputError for invalid settings, an unreachable
    // master, a port already in use, or a timeout, saying which.
    explicit DistributedContext(const DistributedSettings& settings);
    // distributedSettingsFromEnvironment(), then the constructor above.
    static std::unique_ptr<DistributedContext> fromEnvironment();

    ~DistributedContext();
    DistributedContext(const DistributedContext&) = delete;
    DistributedContext& operator=(const DistributedContext&) = delete;

    int rank() const { return settings_.rank; }
    int worldSize() const { return settings_.worldSize; }
    int localRank() const { return settings_.localRank; }
    // Processes on this host: give each availableCores() / localWorldSize() threads.
    int localWorldSize() const { return settings_.localWorldSize; }
    // Rank 0: the one process that writes checkpoints, logs and progress.
    bool isMain() const { return settings_.rank == 0; }
    bool isDistributed() const { return settings_.isDistributed(); }
    const DistributedSettings& settings() const { return settings_; }
    // "gloo", "nccl", or "none" for a single process.
    std::string backendName() const;

    // Copies rank 0's parameters and buffers (BatchNorm running statistics) into every rank.
    void broadcastParameters(torch::nn::Module& module);
    // Copies rank 0's buffers into every rank (before each forward, and before saving).
    void broadcastBuffers(torch::nn::Module& module);
    // Replaces each trainable parameter's gradient by its mean over the ranks, in flat
    // buckets. A parameter whose gradient is undefined on every rank stays undefined (the
    // optimizer skips it, as in one process); undefined on some ranks only counts as zero
    // there. Call after backward, before gradient clipping and the optimizer step.
    void allReduceGradients(torch::nn::Module& module);
    // The mean over the ranks of a per-rank value (loss, metric) for logging; every rank
    // gets the same result.
    double allReduceMean(double value);
    // Element-wise sums over the ranks (e.g. per-case validation results filled in by the
    // rank that computed them, zero elsewhere). Every rank must pass the same length.
    std::vector<double> allReduceSum(const std::vector<double>& values);
    // True on every rank when `flag` is true on any rank (a stop request seen by one rank).
    bool anyRank(bool flag);
    // Copies rank 0's tensors into every rank (same shapes and dtypes on every rank).
    void broadcast(std::vector<torch::Tensor>& tensors);
    // Waits until every rank has arrived.
    void barrier();

    // shardIndices(count, epochSeed, rank(), worldSize()).
    std::vector<std::int64_t> shardIndices(std::int64_t count, std::uint64_t epochSeed) const;

private:
    struct Engine;
    DistributedSettings settings_;
    std::unique_ptr<Engine> engine_;  // null for a single process
};

}  // namespace liverseg::nn

#include "nn/Distributed.h"

#include "core/Errors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <sstream>
#include <thread>

namespace liverseg::nn {

namespace {

// ---- settings ----------------------------------------------------------------------------

std::optional<long long> parseWholeNumber(const std::string& text) {
    long long value = 0;
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, value);
    if (text.empty() || error != std::errc() || stop != end) return std::nullopt;
    return value;
}

// The variable as a whole number in [minimum, maximum], `fallback` when unset.
long long readWholeNumber(const EnvironmentLookup& lookup, const std::string& name, long long fallback,
                          long long minimum, long long maximum, const std::string& rangeNote) {
    const std::optional<std::string> text = lookup(name);
    if (!text) return fallback;
    const std::optional<long long> value = parseWholeNumber(*text);
    if (!value) {
        throw core::InputError("environment variable " + name + "='" + *text + "' is not a whole number");
    }
    if (*value < minimum || *value > maximum) {
        throw core::InputError("environment variable " + name + "=" + *text + " is outside " +
                               std::to_string(minimum) + "-" + std::to_string(maximum) + rangeNote);
    }
    return *value;
}

std::chrono::milliseconds readSeconds(const EnvironmentLookup& lookup, const std::string& name,
                                      std::chrono::milliseconds fallback) {
    const long long seconds = readWholeNumber(lookup, name, -1, 1, 7 * 24 * 3600, " seconds");
    return seconds < 0 ? fallback : std::chrono::milliseconds(seconds * 1000);
}

void validateSettings(const DistributedSettings& settings) {
    const auto fail = [](const std::string& message) { throw core::InputError("data-parallel settings: " + message); };
    if (settings.worldSize < 1) fail("world size " + std::to_string(settings.worldSize) + " is below 1");
    if (settings.rank < 0 || settings.rank >= settings.worldSize) {
        fail("rank " + std::to_string(settings.rank) + " is outside 0-" + std::to_string(settings.worldSize - 1));
    }
    if (settings.localWorldSize < 1 || settings.localWorldSize > settings.worldSize) {
        fail("local world size " + std::to_string(settings.localWorldSize) + " is outside 1-" +
             std::to_string(settings.worldSize));
    }
    if (!settings.isDistributed()) return;
    if (settings.masterAddress.empty()) fail("the master address (rank 0's host) is empty");
    if (settings.masterPort < 1 || settings.masterPort > 65535) {
        fail("master port " + std::to_string(settings.masterPort) + " is outside 1-65535");
    }
    if (settings.connectTimeout.count() <= 0 || settings.operationTimeout.count() <= 0) {
        fail("timeouts must be positive");
    }
    if (settings.gradientBucketBytes == 0) fail("the gradient bucket size must be positive");
}

// ---- errors ------------------------------------------------------------------------------

// c10d's message without LibTorch's C++ backtrace, on one line.
std::string shortMessage(const std::exception& error) {
    std::string text = error.what();
    if (const auto* c10Error = dynamic_cast<const c10::Error*>(&error)) text = c10Error->what_without_backtrace();
    const std::size_t lineEnd = text.find('\n');
    if (lineEnd != std::string::npos) text.resize(lineEnd);
    return text;
}

std::string secondsText(std::chrono::milliseconds duration) {
    std::ostringstream text;
    text << duration.count() / 1000.0 << " s";
    return text.str();
}

bool isLoopback(const std::string& address) {
    return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

// ---- flat buckets ------------------------------------------------------------------------

// Consecutive tensors of one dtype and device, flattened into one tensor for one collective.
struct Bucket {
    std::vector<torch::Tensor> members;
    torch::Tensor flat;
};

std::vector<Bucket> makeBuckets(const std::vector<torch::Tensor>& tensors, std::size_t capacityBytes) {
    std::vector<Bucket> buckets;
    std::size_t bucketBytes = 0;
    for (const torch::Tensor& tensor : tensors) {
        const std::size_t bytes = std::size_t(tensor.numel()) * tensor.element_size();
        const bool fits = !buckets.empty() && buckets.back().members.front().scalar_type() == tensor.scalar_type() &&
                          buckets.back().members.front().device() == tensor.device() &&
                          bucketBytes + bytes <= capacityBytes;
        if (!fits) {
            buckets.emplace_back();
            bucketBytes = 0;
        }
        buckets.back().members.push_back(tensor);
        bucketBytes += bytes;
    }
    for (Bucket& bucket : buckets) {
        std::vector<torch::Tensor> pieces;
        pieces.reserve(bucket.members.size());
        for (const torch::Tensor& member : bucket.members) pieces.push_back(member.reshape({-1}));
        bucket.flat = torch::cat(pieces);
    }
    return buckets;
}

// Copies the bucket's (reduced or broadcast) flat values back into its members.
void unflatten(Bucket& bucket) {
    torch::NoGradGuard noGrad;
    std::int64_t offset = 0;
    for (torch::Tensor& member : bucket.members) {
        member.copy_(bucket.flat.narrow(0, offset, member.numel()).view(member.sizes()));
        offset += member.numel();
    }
}

std::vector<torch::Tensor> detachedParametersAndBuffers(const torch::nn::Module& module, bool withParameters) {
    std::vector<torch::Tensor> tensors;
    if (withParameters) {
        for (const torch::Tensor& parameter : module.parameters()) tensors.push_back(parameter.detach());
    }
    for (const torch::Tensor& buffer : module.buffers()) tensors.push_back(buffer.detach());
    return tensors;
}

}  // namespace

// ---- settings from the environment -------------------------------------------------------

DistributedSettings parseDistributedSettings(const EnvironmentLookup& lookup) {
    DistributedSettings settings;
    settings.worldSize = int(readWholeNumber(lookup, "WORLD_SIZE", 1, 1, 1 << 20, ""));
    const std::string worldNote = " (WORLD_SIZE=" + std::to_string(settings.worldSize) + ")";
    if (settings.isDistributed() && !lookup("RANK")) {
        throw core::InputError("environment variable RANK is not set" + worldNote + ": give each process its rank, 0-" +
                               std::to_string(settings.worldSize - 1));
    }
    settings.rank = int(readWholeNumber(lookup, "RANK", 0, 0, settings.worldSize - 1, worldNote));
    settings.localRank = int(readWholeNumber(lookup, "LOCAL_RANK", 0, 0, settings.worldSize - 1, worldNote));
    settings.localWorldSize = int(readWholeNumber(lookup, "LOCAL_WORLD_SIZE", 1, 1, settings.worldSize, worldNote));
    if (settings.isDistributed()) {
        const std::optional<std::string> master = lookup("MASTER_ADDR");
        if (!master || master->empty()) {
            throw core::InputError("environment variable MASTER_ADDR is not set" + worldNote +
                                   ": give every process the host name or address of rank 0");
        }
        settings.masterAddress = *master;
    }
    settings.masterPort = int(readWholeNumber(lookup, "MASTER_PORT", settings.masterPort, 1, 65535, ""));
    settings.connectTimeout = readSeconds(lookup, "LIVERSEG_DIST_TIMEOUT", settings.connectTimeout);
    settings.operationTimeout = readSeconds(lookup, "LIVERSEG_DIST_OP_TIMEOUT", settings.operationTimeout);
    settings.glooInterface = lookup("GLOO_SOCKET_IFNAME").value_or("");
    if (lookup("TORCHELASTIC_USE_AGENT_STORE") == std::optional<std::string>("True")) {
        settings.agentHostsStore = true;
        settings.storePrefix = "/worker/attempt_" + lookup("TORCHELASTIC_RESTART_COUNT").value_or("0");
    }
    return settings;
}

DistributedSettings distributedSettingsFromEnvironment() {
    return parseDistributedSettings([](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        if (!value) return std::nullopt;
        return std::string(value);
    });
}

// ---- sharding ----------------------------------------------------------------------------

std::vector<std::int64_t> shardIndices(std::int64_t count, std::uint64_t epochSeed, int rank, int worldSize) {
    if (count < 0 || worldSize < 1 || rank < 0 || rank >= worldSize) {
        throw std::invalid_argument("shardIndices: count " + std::to_string(count) + ", rank " +
                                    std::to_string(rank) + " of " + std::to_string(worldSize));
    }
    if (count == 0) return {};
    // torch.Generator().manual_seed(epochSeed) + torch.randperm(count, generator=...).
    const torch::Tensor permutation =
        at::randperm(count, at::make_generator<at::CPUGeneratorImpl>(epochSeed), at::kLong).contiguous();
    const std::int64_t* order = permutation.data_ptr<std::int64_t>();
    const std::int64_t perRank = (count + worldSize - 1) / worldSize;
    std::vector<std::int64_t> share;
    share.reserve(std::size_t(perRank));
    // DistributedSampler pads the permutation by repeating it from its start.
    for (std::int64_t position = rank; position < perRank * worldSize; position += worldSize) {
        share.push_back(order[position % count]);
    }
    return share;
}

// ---- the context -------------------------------------------------------------------------

struct DistributedContext::Engine {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroup> group;
    std::string backend;
    int rank = 0;
    int worldSize = 1;

    // Runs the collectives `launch` starts and waits for all of them; a failure becomes a
    // DistributedError naming what failed.
    template <typename Launch>
    void run(const char* what, Launch&& launch) {
        try {
            std::vector<c10::intrusive_ptr<c10d::Work>> works = launch();
            for (auto& work : works) work->wait();
        } catch (const std::exception& error) {
            throw DistributedError(std::string("data-parallel ") + what + " failed on rank " + std::to_string(rank) +
                                   " of " + std::to_string(worldSize) + " (did another rank stop?): " +
                                   shortMessage(error));
        }
    }

    void allReduce(std::vector<Bucket>& buckets, c10d::ReduceOp::RedOpType op, const char* what) {
        run(what, [&] {
            std::vector<c10::intrusive_ptr<c10d::Work>> works;
            c10d::AllreduceOptions options;
            options.reduceOp = op;
            for (Bucket& bucket : buckets) {
                std::vector<torch::Tensor> one{bucket.flat};
                works.push_back(group->allreduce(one, options));
            }
            return works;
        });
    }

    void broadcast(std::vector<Bucket>& buckets, const char* what) {
        run(what, [&] {
            std::vector<c10::intrusive_ptr<c10d::Work>> works;
            c10d::BroadcastOptions options;
            options.rootRank = 0;
            for (Bucket& bucket : buckets) {
                std::vector<torch::Tensor> one{bucket.flat};
                works.push_back(group->broadcast(one, options));
            }
            return works;
        });
    }
};

namespace {

c10::intrusive_ptr<c10d::Store> connectStore(const DistributedSettings& settings) {
    c10d::TCPStoreOptions options;
    options.port = std::uint16_t(settings.masterPort);
    options.isServer = settings.rank == 0 && !settings.agentHostsStore;
    options.numWorkers = std::size_t(settings.worldSize);
    // TCPStore's own wait for the workers gives up silently after its timeout; waitForAllRanks
    // waits and says so instead.
    options.waitWorkers = false;
    options.timeout = settings.connectTimeout;
    try {
        c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(settings.masterAddress, options);
        if (settings.storePrefix.empty()) return store;
        return c10::make_intrusive<c10d::PrefixStore>(settings.storePrefix, store);
    } catch (const std::exception& error) {
        const std::string where = "MASTER_ADDR=" + settings.masterAddress + " MASTER_PORT=" +
                                  std::to_string(settings.masterPort);
        if (options.isServer) {
            throw core::InputError("data-parallel rendezvous failed on rank 0: could not host the store at " + where +
                                   " (is the port free on this host?): " + shortMessage(error));
        }
        throw core::InputError("data-parallel rendezvous failed on rank " + std::to_string(settings.rank) +
                               ": could not reach " + (settings.agentHostsStore ? "torchrun's store" : "rank 0") +
                               " at " + where + " within " +
                               secondsText(settings.connectTimeout) + " (is rank 0 running and the port open?): " +
                               shortMessage(error));
    }
}

// Every rank counts itself in, then waits until all have (at most connectTimeout).
void waitForAllRanks(c10d::Store& store, const DistributedSettings& settings) {
    const std::string key = "liverseg/joined";
    const auto deadline = std::chrono::steady_clock::now() + settings.connectTimeout;
    std::int64_t joined = 0;
    try {
        joined = store.add(key, 1);
        while (joined < settings.worldSize && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            joined = store.add(key, 0);
        }
    } catch (const std::exception& error) {
        throw core::InputError("data-parallel rendezvous failed on rank " + std::to_string(settings.rank) +
                               ": lost the connection to rank 0's store: " + shortMessage(error));
    }
    if (joined < settings.worldSize) {
        throw core::InputError("data-parallel rendezvous failed on rank " + std::to_string(settings.rank) +
                               ": only " + std::to_string(joined) + " of WORLD_SIZE=" +
                               std::to_string(settings.worldSize) + " processes joined within " +
                               secondsText(settings.connectTimeout) + " (did every rank start, with MASTER_ADDR=" +
                               settings.masterAddress + " MASTER_PORT=" + std::to_string(settings.masterPort) + "?)");
    }
}

// This host's address on the route to the master (what a UDP socket "connected" there is
// bound to; nothing is sent), or nullopt.
std::optional<std::string> localAddressTowards(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found) return std::nullopt;
    std::optional<std::string> local;
    const int handle = ::socket(found->ai_family, SOCK_DGRAM, 0);
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    char text[INET6_ADDRSTRLEN] = {};
    if (handle >= 0 && ::connect(handle, found->ai_addr, found->ai_addrlen) == 0 &&
        ::getsockname(handle, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
        const void* raw = address.ss_family == AF_INET6
                              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&address)->sin6_addr)
                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&address)->sin_addr);
        if (::inet_ntop(address.ss_family, raw, text, sizeof text)) local = text;
    }
    if (handle >= 0) ::close(handle);
    ::freeaddrinfo(found);
    return local;
}

std::shared_ptr<::gloo::transport::Device> glooDevice(const DistributedSettings& settings) {
    if (!settings.glooInterface.empty()) {
        return c10d::ProcessGroupGloo::createDeviceForInterface(settings.glooInterface);
    }
    // All ranks on this host: keep the data on loopback whatever the host name resolves to.
    if (isLoopback(settings.masterAddress)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
    // Not PyTorch's default (the host name's address), which on Debian is often 127.0.1.1
    // and unreachable from the other hosts: the address this host reaches the master from.
    if (const auto local = localAddressTowards(settings.masterAddress, settings.masterPort)) {
        return c10d::ProcessGroupGloo::createDeviceForHostname(*local);
    }
    return c10d::ProcessGroupGloo::createDefaultDevice();
}

c10::intrusive_ptr<c10d::ProcessGroup> makeProcessGroup(const DistributedSettings& settings,
                                                        const c10::intrusive_ptr<c10d::Store>& store,
                                                        std::string& backend) {
    if (settings.device.is_cuda()) {
#ifdef USE_C10D_NCCL
        backend = "nccl";
        return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, settings.rank, settings.worldSize,
                                                            c10d::ProcessGroupNCCL::Options::create());
#else
        throw core::InputError("data-parallel training on " + settings.device.str() +
                               " needs a LibTorch built with CUDA and NCCL; this one has no NCCL: train on the CPU");
#endif
    }
    backend = "gloo";
    try {
        auto options = c10d::ProcessGroupGloo::Options::create(settings.operationTimeout);
        options->devices.push_back(glooDevice(settings));
        options->threads = 2;  // what torch.distributed uses for one device
        return c10::make_intrusive<c10d::ProcessGroupGloo>(store, settings.rank, settings.worldSize, options);
    } catch (const std::exception& error) {
        throw core::InputError("data-parallel training: Gloo could not connect rank " + std::to_string(settings.rank) +
                               " to the others (set GLOO_SOCKET_IFNAME to the interface the hosts share): " +
                               shortMessage(error));
    }
}

}  // namespace

DistributedContext::DistributedContext() = default;

DistributedContext::DistributedContext(const DistributedSettings& settings) : settings_(settings) {
    validateSettings(settings_);
    if (!settings_.isDistributed()) return;
    // A peer that disappears must surface as an error from the collective, not kill this
    // process with SIGPIPE while it writes to the closed socket.
    std::signal(SIGPIPE, SIG_IGN);
    auto engine = std::make_unique<Engine>();
    engine->rank = settings_.rank;
    engine->worldSize = settings_.worldSize;
    engine->store = connectStore(settings_);
    waitForAllRanks(*engine->store, settings_);
    engine->group = makeProcessGroup(settings_, engine->store, engine->backend);
    engine_ = std::move(engine);
}

std::unique_ptr<DistributedContext> DistributedContext::fromEnvironment() {
    return std::make_unique<DistributedContext>(distributedSettingsFromEnvironment());
}

DistributedContext::~DistributedContext() = default;

std::string DistributedContext::backendName() const { return engine_ ? engine_->backend : "none"; }

void DistributedContext::broadcastParameters(torch::nn::Module& module) {
    if (!engine_) return;
    std::vector<Bucket> buckets =
        makeBuckets(detachedParametersAndBuffers(module, /*withParameters=*/true), settings_.gradientBucketBytes);
    engine_->broadcast(buckets, "parameter broadcast");
    for (Bucket& bucket : buckets) unflatten(bucket);
}

void DistributedContext::broadcastBuffers(torch::nn::Module& module) {
    if (!engine_) return;
    std::vector<Bucket> buckets =
        makeBuckets(detachedParametersAndBuffers(module, /*withParameters=*/false), settings_.gradientBucketBytes);
    if (buckets.empty()) return;
    engine_->broadcast(buckets, "buffer broadcast");
    for (Bucket& bucket : buckets) unflatten(bucket);
}

void DistributedContext::allReduceGradients(torch::nn::Module& module) {
    if (!engine_) return;
    std::vector<torch::Tensor> trainable;
    for (const torch::Tensor& parameter : module.parameters()) {
        if (parameter.requires_grad()) trainable.push_back(parameter);
    }
    if (trainable.empty()) return;

    // Which gradients exist on any rank (one small collective), so that every rank reduces
    // the same tensors in the same buckets.
    std::vector<float> definedHere;
    for (const torch::Tensor& parameter : trainable) definedHere.push_back(parameter.grad().defined() ? 1.0f : 0.0f);
    std::vector<Bucket> flags(1);
    flags.front().flat = torch::tensor(definedHere, torch::kFloat).to(settings_.device);
    engine_->allReduce(flags, c10d::ReduceOp::SUM, "gradient presence all-reduce");
    const torch::Tensor definedSomewhere = flags.front().flat.to(torch::kCPU).contiguous();
    const float* definedCount = definedSomewhere.data_ptr<float>();

    std::vector<torch::Tensor> gradients;
    for (std::size_t index = 0; index < trainable.size(); ++index) {
        if (definedCount[index] == 0.0f) continue;
        torch::Tensor& parameter = trainable[index];
        if (!parameter.grad().defined()) parameter.mutable_grad() = torch::zeros_like(parameter);
        if (parameter.grad().is_sparse()) {
            throw std::logic_error("allReduceGradients: sparse gradients are not supported");
        }
        gradients.push_back(parameter.grad());
    }
    std::vector<Bucket> buckets = makeBuckets(gradients, settings_.gradientBucketBytes);
    engine_->allReduce(buckets, c10d::ReduceOp::SUM, "gradient all-reduce");
    for (Bucket& bucket : buckets) {
        bucket.flat.div_(settings_.worldSize);
        unflatten(bucket);
    }
}

std::vector<double> DistributedContext::allReduceSum(const std::vector<double>& values) {
    if (!engine_ || values.empty()) return values;
    std::vector<Bucket> buckets(1);
    buckets.front().flat = torch::tensor(values, torch::kDouble).to(settings_.device);
    engine_->allReduce(buckets, c10d::ReduceOp::SUM, "metric all-reduce");
    const torch::Tensor sums = buckets.front().flat.to(torch::kCPU).contiguous();
    return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

double DistributedContext::allReduceMean(double value) {
    if (!engine_) return value;
    return allReduceSum({value}).front() / settings_.worldSize;
}

bool DistributedContext::anyRank(bool flag) {
    if (!engine_) return flag;
    return allReduceSum({flag ? 1.0 : 0.0}).front() > 0.0;
}

void DistributedContext::broadcast(std::vector<torch::Tensor>& tensors) {
    if (!engine_ || tensors.empty()) return;
    std::vector<torch::Tensor> detached;
    for (const torch::Tensor& tensor : tensors) detached.push_back(tensor.detach());
    std::vector<Bucket> buckets = makeBuckets(detached, settings_.gradientBucketBytes);
    engine_->broadcast(buckets, "broadcast");
    for (Bucket& bucket : buckets) unflatten(bucket);
}

void DistributedContext::barrier() {
    if (!engine_) return;
    engine_->run("barrier", [&] { return std::vector<c10::intrusive_ptr<c10d::Work>>{engine_->group->barrier()}; });
}

std::vector<std::int64_t> DistributedContext::shardIndices(std::int64_t count, std::uint64_t epochSeed) const {
    return nn::shardIndices(count, epochSeed, settings_.rank, settings_.worldSize);
}

}  // namespace liverseg::nn

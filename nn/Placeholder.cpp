// replaced by the networks

"""The proxy spaces, in the order the strategy tests run them."""

#: Every space's small preset, the hierarchical ones first.
PROXY_SPACES = ["hnas-proxy", "trilevel-proxy", "hinas-proxy", "dlsr-proxy", "deconas-proxy"]

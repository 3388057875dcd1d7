"""See inside the networks: what every layer computes, the filters, where the network
looks and what it gets wrong (issue 21). The computing modules need no matplotlib;
``figures`` draws, ``show`` joins them for the API and the CLI."""

"""The correctness oracle (issue 4): the same rows in 4 shards behind the router and in one reference database,
and a generated corpus of queries whose results must be identical on both."""

"""Use cases: each public function is one transaction that loads, applies domain rules, commits."""

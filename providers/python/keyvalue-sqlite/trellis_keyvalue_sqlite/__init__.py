"""`trellis-keyvalue-sqlite`: wasi:keyvalue (store, atomics, batch) on SQLite, in Python.

Every workload's buckets live in one SQLite file (``--db``), in rows keyed
by (workload, bucket, key); a handle names ``<workload>.<bucket>`` and is
honoured only for calls from that workload, so workloads never see each
other's data. The bucket is the binding's ``bucket`` config when set, else
the identifier the guest passes to ``open``. Replicas on one machine may
share the file (SQLite's WAL keeps reads after writes consistent).
"""

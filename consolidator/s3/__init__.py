"""The S3 side of backups: pre-flight checks of the Barman Cloud destination, per-cluster bucket
policies and an optional pg_dump safety net streamed to the same object store.

Only ``check`` and ``safety`` talk to S3 (boto3's standard credential chain); ``policy`` and
``location`` are pure, so plan writing can use them without network access.
"""

"""Fixed keys for data at rest in every test run (loaded with ``-p`` before Django reads its settings).

In the environment, so the workers, servers and quickstarts the tests start read with the same keys.
"""

import os

TEST_KEYS = {
    "IDENTITY_HASH_KEY": "test-identity-hash-key-0123456789-abcdefghij",
    "PII_ENCRYPTION_KEYS": "dGVzdC1waWktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=",
    "CHANNEL_SECRETS_KEY": "dGVzdC1jaGFubmVsLXNlY3JldHMta2V5LTMyYnl0ZXM=",
}
for name, value in TEST_KEYS.items():
    os.environ.setdefault(name, value)

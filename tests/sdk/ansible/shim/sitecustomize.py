"""Works around an upstream bug of azure.azcollection, not of Tessera.

azure.azcollection (every version in the `ansible` releases on PyPI up to 12.3.0, collection
3.12.0) resolves a `cloud_environment` given as a metadata-discovery URL (how Azure Stack and every
private cloud are reached) by calling `azure.cli.core.cloud.get_cloud_from_metadata_endpoint`,
which azure-cli-core no longer has: the module fails before sending a request
(ansible-collections/azure#2157, fixed by #2158 in a collection release not yet in an `ansible`
release on PyPI). The collection itself stays unmodified; this file, put on PYTHONPATH for the
playbook run only, gives azure-cli-core that function back: it reads the cloud's
`/metadata/endpoints` document and maps it with azure-cli-core's own mapper. Remove it when the
pinned `ansible` carries the fixed collection.
"""

import os


def _install():
    try:
        import requests
        from azure.cli.core import cloud
    except ImportError:
        return
    if hasattr(cloud, "get_cloud_from_metadata_endpoint"):
        return

    def get_cloud_from_metadata_endpoint(arm_endpoint, name=None, session=None):
        url = arm_endpoint.rstrip("/") + "/metadata/endpoints?api-version=2022-09-01"
        response = (session or requests).get(url, timeout=30)
        response.raise_for_status()
        return cloud._arm_to_cli_mapper(response.json())  # pylint: disable=protected-access

    cloud.get_cloud_from_metadata_endpoint = get_cloud_from_metadata_endpoint


if os.environ.get("AZURE_CLOUD_ENVIRONMENT", "").startswith("https://"):
    _install()

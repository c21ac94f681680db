"""Probably already disclosed: a flagged record naming no CVE/GHSA id is compared with its package's advisories."""

import json
from pathlib import Path

import pytest

from transferlab.vuln.advisories import Advisory
from transferlab.vuln.disclosure import DEFAULT, DisclosureCheck, names_an_id
from transferlab.vuln.scan import Item

DEMO = Path(__file__).parents[1] / "src" / "transferlab" / "vuln" / "demo_project" / "osv" / "GHSA-x84v-xcm2-53pg.json"


@pytest.fixture(scope="module")
def check():
    return DisclosureCheck.default()


@pytest.fixture(scope="module")
def demo_advisory():
    return Advisory.from_osv(json.loads(DEMO.read_text()))


def test_the_shipped_threshold_says_where_it_came_from():
    settings = json.loads(DEFAULT.read_text())
    assert 0 < settings["threshold"] < 1 and "VulCurator" in settings["chosen_on"]
    assert settings["validation"]["positives"] > 0 and "bench vulcurator" in settings["command"]


@pytest.mark.slow
def test_a_record_repeating_the_demo_advisory_is_probably_disclosed(check, demo_advisory):
    record = {"title": "Requests sends Authorization header to http URI after same-hostname https-to-http redirect",
              "body": "The Requests package for Python sends an HTTP Authorization header to an http URI upon "
                      "receiving a same-hostname https-to-http redirect, which lets attackers sniff credentials."}
    found = check.best(record, [demo_advisory])
    assert found is not None and found[0].id == "GHSA-x84v-xcm2-53pg" and found[1] >= check.threshold
    item = Item(record, 0.9, 0.9, {}, probable=(found[0].id, round(found[1], 4)))
    assert item.status.startswith("probably already disclosed (GHSA-x84v-xcm2-53pg, score 0.")
    assert item.disclosure == "probably already disclosed"


@pytest.mark.slow
def test_a_near_miss_on_the_same_package_stays_an_early_warning(check, demo_advisory):
    record = {"title": "requests hangs forever on a malformed chunked trailer",
              "body": "A server can make requests.get block indefinitely by sending a broken chunked encoding; "
                      "a denial of service."}
    assert check.best(record, [demo_advisory]) is None
    assert check.best(record, []) is None


def test_only_records_without_ids_are_compared():
    assert names_an_id({"refs": {"cve": ["CVE-2018-18074"]}})
    assert names_an_id({"refs": {"ghsa": ["GHSA-x84v-xcm2-53pg"]}})
    assert not names_an_id({"refs": {"urls": ["https://example.com"]}}) and not names_an_id({})
    assert Item({}, 0.5, 0.5, {}).status == "early warning"

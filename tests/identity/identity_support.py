"""Real servers on loopback for the identity tests: a PLC directory, a did:web / well-known host, a DNS server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiohttp import web

from atstack.core.crypto import PrivateKey, generate_private_key
from atstack.core.plc_op import create_genesis_op, did_for_genesis
from atstack.plc import PlcConfig, create_app
from atstack.xrpc.service import start_test_server


@dataclass
class Account:
    rotation: PrivateKey
    signing: PrivateKey
    genesis: dict[str, Any]
    did: str


def new_account(handle: str, pds: str = "https://pds.example.com") -> Account:
    rotation, signing = generate_private_key(), generate_private_key()
    genesis = create_genesis_op(
        rotation,
        [rotation],
        {"atproto": signing.did_key()},
        [f"at://{handle}"],
        {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": pds}},
    )
    return Account(rotation, signing, genesis, did_for_genesis(genesis))


async def start_plc(data_dir: Path) -> tuple[str, web.AppRunner]:
    runner, url = await start_test_server(create_app(PlcConfig(data_dir=data_dir)))
    return url, runner


@dataclass
class WebHost:
    """An HTTP host whose answers the test sets: ``routes[path] = (status, body)`` or a redirect target."""

    routes: dict[str, tuple[int, bytes | str]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    url: str = ""
    port: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path not in self.routes:
            return web.Response(status=404, text="not here")
        status, body = self.routes[path]
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": str(body)})
        return web.Response(status=status, body=body if isinstance(body, bytes) else body.encode())


async def start_web_host() -> tuple[WebHost, web.AppRunner]:
    host = WebHost()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", host.handle)
    runner, url = await start_test_server(app)
    host.url = url
    host.port = int(url.rsplit(":", 1)[1])
    return host, runner


class DnsServer(asyncio.DatagramProtocol):
    """An authoritative-looking UDP DNS server answering TXT queries from ``records`` (name → TXT texts)."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.queries = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries += 1
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        texts = self.records.get(name)
        if texts is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            for text in texts:
                rrset.add(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text), ttl=60)
            response.answer.append(rrset)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


async def start_dns() -> tuple[DnsServer, int, Callable[[], None]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(DnsServer, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    return protocol, port, transport.close


async def read_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        return await resp.json(content_type=None)

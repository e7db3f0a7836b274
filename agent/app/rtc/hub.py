"""The server's browser sessions: offers answered, a client limit, live settings, the map picture.

``POST /api/rtc/offer`` takes ``{"sdp", "type": "offer"}`` (and optional ``"settings"``) and answers
``{"sdp", "type": "answer", "client"}``. The peer connection uses no STUN/TURN server
(``iceServers=[]``: offline, host candidates only). Beyond ``serve.max_clients`` an offer gets 503
with the reason; a malformed one 400; the other clients never notice either.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError

from agent.common.config import Settings
from tools.common.errors import ErrorCode, MMChatError

from agent.app.rtc.client import RtcClient
from agent.app.rtc.live import LiveSettings

log = logging.getLogger(__name__)
MAX_SDP = 100_000


class Offer(BaseModel):
    model_config = {"extra": "forbid"}
    sdp: str = Field(min_length=10, max_length=MAX_SDP)
    type: Literal["offer"]
    settings: dict[str, Any] | None = None


class RtcHub:
    """Every connected tab (``clients``) over one set of shared models."""

    def __init__(self, settings: Settings, shared: Any) -> None:
        self.settings, self.shared = settings, shared
        self.max_clients = settings.serve.max_clients
        self.defaults = LiveSettings.of(settings)
        self.clients: dict[str, RtcClient] = {}

    def client(self, client_id: str | None) -> RtcClient:
        c = self.clients.get(client_id or "")
        if c is None:
            raise MMChatError(f"no live session {client_id!r} (connected: {len(self.clients)})", ErrorCode.BAD_INPUT)
        return c

    async def offer(self, payload: Any) -> dict[str, Any]:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        try:
            offer = Offer.model_validate(payload)
        except ValidationError as e:
            err = e.errors()[0]
            raise MMChatError(f"offer: {'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}",
                              ErrorCode.BAD_INPUT) from None
        live = self.defaults.merged(offer.settings or {})
        if len(self.clients) >= self.max_clients:
            raise MMChatError(f"server full: {len(self.clients)} live sessions is the limit (serve.max_clients); "
                              "close another tab or try again later", ErrorCode.BACKEND_UNAVAILABLE)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        client = RtcClient(pc, self.shared, self.settings, live)
        self.clients[client.id] = client  # the slot is taken before the first await
        pc.on("track", client.add_track)
        pc.on("datachannel", client.attach_channel)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.drop(client.id)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
            pc.addTrack(client.reply)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:  # noqa: BLE001 - any parse/negotiation failure is the offer's fault
            await self.drop(client.id)
            raise MMChatError(f"malformed offer: {type(e).__name__}: {e}", ErrorCode.BAD_INPUT) from None
        client.start()
        log.info("live session %s connected (%d/%d)", client.id, len(self.clients), self.max_clients)
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "client": client.id}

    async def drop(self, client_id: str) -> None:
        client = self.clients.pop(client_id, None)
        if client is not None:
            await client.close()
            log.info("live session %s closed (%d left)", client_id, len(self.clients))

    async def close_all(self) -> None:
        await asyncio.gather(*(self.drop(c) for c in list(self.clients)))

    def active(self, client_id: str | None) -> bool:
        """Is ``client_id`` a live session unlocked by voice and face right now?"""
        c = self.clients.get(client_id or "")
        return c is not None and c.state == "active"


def map_png(client: RtcClient) -> Path:
    """The client's SLAM top-down map drawn to a temporary PNG (NO map yet: a coded error)."""
    from tools.slam.draw import draw_top_down

    hook = client.runner.parts.perception if client.runner is not None else None
    m = hook.mapping.map if hook is not None and hook.mapping is not None else None
    if m is None or not m.points:
        raise MMChatError("no map yet: switch to mapping mode and move the camera", ErrorCode.BAD_INPUT)
    out = Path(tempfile.gettempdir()) / f"mmchat-map-{client.id}.png"
    return draw_top_down(m, out, title=f"map ({len(m.points)} points)")


def add_rtc_routes(app: FastAPI, hub: RtcHub, json_body: Any) -> None:
    @app.post("/api/rtc/offer")
    async def rtc_offer(request: Request) -> dict[str, Any]:
        return await hub.offer(await json_body(request))

    @app.get("/api/rtc/clients")
    async def rtc_clients() -> dict[str, Any]:
        return {"clients": [c.stats() for c in hub.clients.values()], "max_clients": hub.max_clients,
                "models_loaded": hub.shared.loaded}

    @app.delete("/api/rtc/{client_id}")
    async def rtc_close(client_id: str) -> dict[str, Any]:
        hub.client(client_id)
        await hub.drop(client_id)
        return {"closed": client_id}

    @app.get("/api/rtc/{client_id}/map.png")
    async def rtc_map(client_id: str) -> FileResponse:
        path = await asyncio.get_running_loop().run_in_executor(None, map_png, hub.client(client_id))
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/settings")
    async def get_settings(client: str | None = None) -> dict[str, Any]:
        live = hub.client(client).live if client else hub.defaults
        return {"client": client, "settings": live.model_dump(),
                "limits": LiveSettings.model_json_schema()["properties"]}

    @app.post("/api/settings")
    async def post_settings(request: Request, client: str | None = None) -> dict[str, Any]:
        changes = await json_body(request)
        if not client:
            hub.defaults = hub.defaults.merged(changes)  # new sessions start from these
            return {"client": None, "settings": hub.defaults.model_dump()}
        c = hub.client(client)
        live = await asyncio.get_running_loop().run_in_executor(None, c.update, changes)
        return {"client": client, "settings": live.model_dump()}

    startup = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> Any:
        async with startup(a) as state:
            yield state
        await hub.close_all()  # every peer connection and session thread ends with the server
    app.router.lifespan_context = lifespan

// MMChat live page: camera + microphone over WebRTC to the server's hands-free session.
"use strict";
const $ = id => document.getElementById(id);
const SLIDERS = {max_faces: "max faces", min_detection_confidence: "min detection confidence",
  min_tracking_confidence: "min tracking confidence", wake_threshold: "wake threshold",
  gesture_hold_ms: "gesture hold (ms)", emotion_smoothing: "emotion smoothing (newest weight)",
  detector_score_threshold: "detector score threshold"};
const HAND = [[0,1],[1,2],[2,3],[3,4],[0,5],[5,6],[6,7],[7,8],[5,9],[9,10],[10,11],[11,12],[9,13],[13,14],
  [14,15],[15,16],[13,17],[17,18],[18,19],[19,20],[0,17]];
const live = {pc: null, channel: null, client: null, last: null, replyEnergy: 0, mapTimer: null, states: ["locked"]};
window.mmchat = live;

function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]); }
function notice(text) { const n = $("notice"); n.textContent = text || ""; n.style.display = text ? "block" : "none"; }
function line(cls, who, text) {
  const d = document.createElement("div"); d.className = cls; d.innerHTML = `<b>${esc(who)}:</b> ${esc(text)}`;
  $("transcript").append(d); $("transcript").scrollTop = 1e9;
}
function setState(s) {
  if (!s) return; const el = $("state"); el.textContent = s; el.className = s;
  if (live.states[live.states.length - 1] !== s) live.states.push(s);
}

async function media(wantCamera) {
  const audio = {echoCancellation: true, noiseSuppression: false, autoGainControl: false};
  const params = new URLSearchParams(location.search);
  if (params.get("raw") === "1") audio.echoCancellation = false;  // tests: faithful levels from a file
  const video = {width: {ideal: 640}, height: {ideal: 480}, frameRate: {ideal: 15, max: 30}};
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
    throw new Error("this browser gives no camera or microphone here (the page needs https or localhost)");
  if (wantCamera) {
    try { return await navigator.mediaDevices.getUserMedia({audio, video}); }
    catch (e) {
      const stream = await navigator.mediaDevices.getUserMedia({audio});  // the microphone alone may still work
      notice(e.name === "NotAllowedError" ? "Camera permission denied: running audio only (the face check will refuse)."
                                          : `No camera (${e.name}): running audio only.`);
      return stream;
    }
  }
  return navigator.mediaDevices.getUserMedia({audio});
}

async function start() {
  notice(""); $("start").disabled = true;
  let stream;
  try { stream = await media($("usecam").checked); }
  catch (e) {
    const what = $("usecam").checked ? "Camera and microphone" : "Microphone";
    notice(e.name === "NotAllowedError" ? `${what} permission denied: allow them for this page (the icon in the address bar), then Start again.`
                                        : `No microphone: ${e.message || e.name}`);
    $("start").disabled = false; return;
  }
  const hasVideo = stream.getVideoTracks().length > 0;
  $("video").srcObject = hasVideo ? stream : null; $("nocam").style.display = hasVideo ? "none" : "flex";
  const pc = new RTCPeerConnection({iceServers: []}); live.pc = pc;
  stream.getTracks().forEach(t => pc.addTrack(t, stream));
  pc.ontrack = e => { if (e.track.kind === "audio") $("reply").srcObject = new MediaStream([e.track]); };
  pc.onconnectionstatechange = () => { $("conn").textContent = pc.connectionState;
    if (["failed", "closed"].includes(pc.connectionState)) stop(); };
  const ch = pc.createDataChannel("events"); live.channel = ch;
  ch.onmessage = e => onMessage(JSON.parse(e.data));
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(ok => { if (pc.iceGatheringState === "complete") ok();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok(); setTimeout(ok, 3000); });
  const res = await fetch("/api/rtc/offer", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({sdp: pc.localDescription.sdp, type: "offer", settings: currentSliders()})});
  const r = await res.json().catch(() => ({error: res.statusText}));
  if (!res.ok) { notice(`The server refused the live session: ${r.error || res.statusText}`); stop(); return; }
  live.client = r.client; $("stop").disabled = false; $("conn").textContent = "connecting";
  await pc.setRemoteDescription({type: r.type, sdp: r.sdp});
  live.statsTimer = setInterval(replyStats, 1000);
}

function stop() {
  // keepalive: the request outlives the page when the tab is closed or navigated away (pagehide below)
  if (live.client) fetch(`/api/rtc/${live.client}`, {method: "DELETE", keepalive: true}).catch(() => {});
  if (live.pc) { live.pc.getSenders().forEach(s => s.track && s.track.stop()); live.pc.close(); }
  live.pc = null; live.client = null; clearInterval(live.statsTimer); clearInterval(live.mapTimer);
  $("start").disabled = false; $("stop").disabled = true; $("conn").textContent = "not connected";
}

// a closed, reloaded or navigated-away tab ends its session at once (else it lingers, holding a
// serve.max_clients seat, until the peer connection times out)
window.addEventListener("pagehide", () => { if (live.client) stop(); });

async function replyStats() {
  if (!live.pc) return;
  (await live.pc.getStats()).forEach(s => {
    if (s.type === "inbound-rtp" && s.kind === "audio") live.replyEnergy = s.totalAudioEnergy || 0;
  });
}

function onMessage(m) {
  setState(m.state);
  switch (m.type) {
    case "perception": live.last = m; draw(m); setMode(m.mode);
      $("perf").textContent = `analysed ${m.fps} frames/s · ${m.faces.length} face(s) · ${m.hands.length} hand(s) · ${m.objects.length} object(s)`; break;
    case "ready": line("muted", "session", m.camera ? "listening (camera on)" : "listening (no camera)"); break;
    case "wake": line("muted", "heard", `wake word (${m.score})`); break;
    case "verify": if (m.decision !== "accept") line("err", "gate", m.reason); break;
    case "unlock": line("muted", "gate", `unlocked for ${m.user}`); break;
    case "lock": line("muted", "gate", `locked (${m.reason})`); break;
    case "transcript": line("you", "you", m.text); break;
    case "reply": case "refusal": case "notice": case "goodbye": line("bot", "assistant", m.text); break;
    case "gesture": if (m.mode) setMode(m.mode); break;
    case "error": line("err", "error", `${m.stage || ""}: ${m.message}`); break;
  }
}

function setMode(mode) {
  if (!mode || $("mode").textContent === mode) return;
  $("mode").textContent = mode; const map = $("map");
  clearInterval(live.mapTimer);
  if (mode !== "mapping") { map.style.display = "none"; return; }
  const refresh = () => { if (!live.client) return; const img = new Image();
    img.onload = () => { map.src = img.src; map.style.display = "block"; };
    img.src = `/api/rtc/${live.client}/map.png?ts=${Date.now()}`; };
  refresh(); live.mapTimer = setInterval(refresh, 3000);
}

function draw(m) {
  const c = $("overlay"), v = $("video"), g = c.getContext("2d");
  c.width = c.clientWidth; c.height = c.clientHeight; g.clearRect(0, 0, c.width, c.height);
  if (!m.width) return;
  const s = Math.min(c.width / m.width, c.height / m.height);  // the video is letterboxed (object-fit: contain)
  const ox = (c.width - m.width * s) / 2, oy = (c.height - m.height * s) / 2;
  const X = x => ox + x * s, Y = y => oy + y * s;
  const label = (text, x, y, color) => { g.font = "13px system-ui"; const w = g.measureText(text).width + 6;
    g.fillStyle = color; g.fillRect(X(x), Y(y) - 16, w, 16); g.fillStyle = "#fff"; g.fillText(text, X(x) + 3, Y(y) - 4); };
  g.lineWidth = 2;
  // boxes are [x1, y1, x2, y2] in the analysed frame's pixels
  for (const o of m.objects) { const [x, y, x2, y2] = o.box; g.strokeStyle = "#fa0";
    g.strokeRect(X(x), Y(y), (x2 - x) * s, (y2 - y) * s); label(`${o.label} #${o.id}`, x, y, "#c70"); }
  for (const f of m.faces) {
    const [x, y, x2, y2] = f.box; g.strokeStyle = "#0cf"; g.strokeRect(X(x), Y(y), (x2 - x) * s, (y2 - y) * s);
    g.fillStyle = "#7ef"; for (const [px, py] of f.landmarks) g.fillRect(X(px) - 1, Y(py) - 1, 2, 2);
    label([f.name, f.emotion].filter(Boolean).join(" · "), x, y, "#07a");
  }
  for (const hd of m.hands) {
    const p = hd.landmarks; if (!p.length) continue; g.strokeStyle = "#f3c";
    g.beginPath(); for (const [a, b] of HAND) { g.moveTo(X(p[a][0]), Y(p[a][1])); g.lineTo(X(p[b][0]), Y(p[b][1])); } g.stroke();
    label(hd.gesture, p[0][0], p[0][1] + 24, "#a27");
  }
}

function currentSliders() {
  const out = {}; document.querySelectorAll("#sliders input").forEach(i => out[i.name] = Number(i.value)); return out;
}
async function loadSliders() {
  const r = await (await fetch("/api/settings")).json(); const box = $("sliders");
  for (const [key, title] of Object.entries(SLIDERS)) {
    const lim = r.limits[key] || {}, v = r.settings[key];
    const min = lim.minimum ?? lim.exclusiveMinimum ?? 0, max = lim.maximum ?? lim.exclusiveMaximum ?? 1;
    const step = lim.type === "integer" ? 1 : max > 100 ? 50 : 0.01;
    const lo = lim.exclusiveMinimum !== undefined ? min + step : min, hi = lim.exclusiveMaximum !== undefined ? max - step : max;
    const l = document.createElement("label");
    l.innerHTML = `<span>${esc(title)}</span><input type="range" name="${key}" min="${lo}" max="${hi}" step="${step}" value="${v}"><output>${v}</output>`;
    const input = l.querySelector("input"), out = l.querySelector("output");
    input.oninput = () => out.textContent = input.value;
    input.onchange = () => push({[key]: Number(input.value)});
    box.append(l);
  }
}
async function push(changes) {
  const url = "/api/settings" + (live.client ? `?client=${live.client}` : "");
  const res = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(changes)});
  const r = await res.json().catch(() => ({}));
  $("settings-msg").textContent = res.ok ? "applied" : `refused: ${r.error}`;
}

$("start").onclick = () => start().catch(e => { notice(`Could not start: ${e.message}`); stop(); });
$("stop").onclick = stop;
loadSliders();
if (new URLSearchParams(location.search).get("autostart") === "1") $("start").click();

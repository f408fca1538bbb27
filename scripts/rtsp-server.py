#!/usr/bin/python3
"""rtsp-server.py: a real RTSP camera on loopback for siglipd's tests.

It serves one live H.264 stream (GStreamer's RTSP server, the Debian packages
python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,ugly})
and takes commands on stdin, one per line, so a test can misbehave on cue:

    color RRGGBB   solid picture of that colour from the next frame on
    pattern NAME   a videotestsrc pattern instead (smpte, ball, snow, ...)
    stall          keep every connection open but send no more frames
    resume         send frames again
    keyframe       answer only once the next keyframe has left the encoder
                   (a client that joins a second later waits for the one after)
    quit           stop serving and exit

Each command is answered "ok <command>" on stdout once applied (or "error
<why>"), and "ready rtsp://HOST:PORT/PATH" is printed once the server listens.

Two things keep the server from wedging the way it once did, when a client
joined a stalled stream: the pipeline is not seekable, so a client's PLAY
does not flush it, and a stall drops buffers with a pad probe, never events.
(Before, every PLAY flushed the shared pipeline with a seek, and a valve that
dropped the flush events too left the server waiting 20 s for a state change
with its one request thread blocked: later clients got no answer at all.)

With --file it serves a pre-encoded H.264 file instead, as it is (no
encoding: twenty 1080p cameras cost the server next to nothing), looping, on
one mount or on --cameras mounts (PATH0, PATH1, ...), mount i starting i x
--stagger seconds into the file, so that the file's scripted changes reach the
cameras at different times. The file is an Annex B byte stream without
B-frames (ffmpeg -f h264 -bf 0), split into pictures here and stamped with
times at --fps; an identity element with sync=true lets each picture go at
its time, as a live camera sends it. --timeline names a file the server
appends "MOUNT ZERO_NS FROM_NS" to when a mount starts and at each of its
loops: ZERO_NS is the Unix time (ns) at which the file's first picture was
sent (at the start, when the mount began mid-file: would have been), FROM_NS
the file position (ns) the run started from (0 for a whole loop). A change
scripted at position P of the file reached the mount's clients at ZERO_NS +
P, for P >= FROM_NS. Commands other than quit are refused in this mode.

Run it with /usr/bin/python3: a pyenv python3 first on PATH cannot see
python3-gi.

    /usr/bin/python3 scripts/rtsp-server.py --port 8554 --fps 25 --color 808080
    /usr/bin/python3 scripts/rtsp-server.py --keyframe-interval 8   # a "smart codec" camera
    /usr/bin/python3 scripts/rtsp-server.py --file scene.h264 --cameras 20 --stagger 1.5 --timeline tl.txt
    /usr/bin/python3 scripts/rtsp-server.py --check   # exit 0 when everything it needs is installed
"""

import argparse
import sys
import threading
import time


def load_gst():
    """Imports GStreamer; on failure returns the reason as a string."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as e:
        return None, "python3-gi / gir1.2-gst-rtsp-server-1.0: %s" % e
    Gst.init(None)
    for element, package in [
        ("videotestsrc", "gstreamer1.0-plugins-base"),
        ("videoconvert", "gstreamer1.0-plugins-base"),
        ("x264enc", "gstreamer1.0-plugins-ugly"),
        ("rtph264pay", "gstreamer1.0-plugins-good"),
        ("appsrc", "gstreamer1.0-plugins-base"),  # --file
        ("identity", "libgstreamer1.0-0"),  # --file
    ]:
        if Gst.ElementFactory.find(element) is None:
            return None, "GStreamer element %s (%s) is missing" % (element, package)
    return (GLib, Gst, GstRtspServer), None


def say(line):
    print(line, flush=True)


def parse_color(text):
    """'ff0000' or '#ff0000' -> videotestsrc's 0xAARRGGBB."""
    text = text.strip().lstrip("#")
    if len(text) != 6:
        raise ValueError("colour must be RRGGBB, got %r" % text)
    return 0xFF000000 | int(text, 16)


class Camera:
    """The media factory plus the run-time state every new pipeline starts from."""

    def __init__(self, mods, args):
        GLib, Gst, GstRtspServer = mods
        self.Gst = Gst
        self.color = parse_color(args.color)
        self.pattern = args.pattern
        self.GLib = GLib
        self.stalled = False  # read by the streaming threads' pad probes
        self.medias = []  # live pipelines (one while the factory is shared)
        self.keyframe_waiters = []  # "keyframe" commands not answered yet

        # videotestsrc is-live paces frames like a camera. key-int-max sets
        # the GOP: by default a keyframe every second, so a client that
        # (re)connects decodes within a second, as with a typical camera;
        # --keyframe-interval 8 acts like a "smart codec" camera. Clients of
        # the shared pipeline get no keyframe when they join (see on_query):
        # they wait for the next one, as with many real cameras.
        launch = (
            "( videotestsrc name=src is-live=true "
            "! video/x-raw,width={w},height={h},framerate={fps}/1 "
            "! videoconvert "
            "! x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        ).format(w=args.width, h=args.height, fps=args.fps, gop=max(1, round(args.fps * args.keyframe_interval)))

        self.factory = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(launch)
        # One pipeline for all clients: a command applies to every connection.
        self.factory.set_shared(True)
        self.factory.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, factory, media):
        self.medias.append(media)
        media.connect("unprepared", lambda m: self.medias.remove(m) if m in self.medias else None)
        bin_ = media.get_element()
        Gst = self.Gst
        bin_.get_by_name("src").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.on_raw_frame)
        enc = bin_.get_by_name("enc").get_static_pad("src")
        enc.add_probe(Gst.PadProbeType.BUFFER, self.on_encoded)
        enc.add_probe(Gst.PadProbeType.QUERY_UPSTREAM, self.on_query)
        self.apply(media)

    def on_raw_frame(self, pad, info):
        """Streaming thread: drops frames (buffers only, never events) while stalled."""
        return self.Gst.PadProbeReturn.DROP if self.stalled else self.Gst.PadProbeReturn.OK

    def on_encoded(self, pad, info):
        """Streaming thread: answers pending "keyframe" commands at a keyframe."""
        buf = info.get_buffer()
        if not buf.has_flags(self.Gst.BufferFlags.DELTA_UNIT):
            self.GLib.idle_add(self.keyframe_out)
        return self.Gst.PadProbeReturn.OK

    def on_query(self, pad, info):
        """Streaming thread: answers the pipeline's seeking query "not seekable".

        A seekable shared media makes the RTSP server flush the whole pipeline
        with a seek at every client's PLAY: the encoder restarts, so every
        join would get a keyframe at once, and every client already watching
        a glitch. A new query says "not seekable" until answered, so handling
        it unanswered is enough (PyGObject cannot make it writable anyway).
        """
        if info.get_query().type == self.Gst.QueryType.SEEKING:
            return self.Gst.PadProbeReturn.HANDLED
        return self.Gst.PadProbeReturn.OK

    def keyframe_out(self):
        waiters, self.keyframe_waiters = self.keyframe_waiters, []
        for line in waiters:
            say("ok " + line)
        return False

    def apply(self, media):
        bin_ = media.get_element()
        src = bin_.get_by_name("src")
        if self.pattern:
            self.Gst.util_set_object_arg(src, "pattern", self.pattern)
        else:
            self.Gst.util_set_object_arg(src, "pattern", "solid-color")
            src.set_property("foreground-color", self.color)

    def command(self, line):
        """Runs in the GLib main loop (via idle_add): GStreamer state is not ours to touch from the stdin thread."""
        words = line.split()
        try:
            if not words:
                return False
            cmd = words[0]
            if cmd == "color" and len(words) == 2:
                self.color = parse_color(words[1])
                self.pattern = ""
            elif cmd == "pattern" and len(words) == 2:
                self.pattern = words[1]
            elif cmd == "stall" and len(words) == 1:
                self.stalled = True
            elif cmd == "resume" and len(words) == 1:
                self.stalled = False
            elif cmd == "keyframe" and len(words) == 1:
                if not self.medias:
                    say("error keyframe: no client is connected, so nothing is encoded")
                    return False
                self.keyframe_waiters.append(line)  # answered by keyframe_out
                return False
            else:
                say("error unknown command %r" % line)
                return False
            for media in self.medias:
                self.apply(media)
            say("ok " + line)
        except Exception as e:  # report, keep serving
            say("error %s: %s" % (line, e))
        return False  # run once


def read_pictures(path):
    """Splits an H.264 Annex B byte stream into pictures (access units).

    Returns a list of (bytes, is_key). A picture starts at an AUD, SPS, PPS
    or SEI that follows a slice, or at a slice whose first_mb_in_slice is 0
    (the first bit of its header: ue(v) 0 is a lone 1 bit) that follows one
    (H.264 7.4.1.2.3, simplified for what x264 writes); it is a key frame
    when it holds an IDR slice. Start codes cannot occur inside a NAL unit
    (emulation prevention), so a plain search finds them all.
    """
    with open(path, "rb") as f:
        data = f.read()
    nals = []  # (begin of its start code, NAL type, first_mb_in_slice == 0)
    i = data.find(b"\x00\x00\x01")
    while 0 <= i < len(data) - 4:
        begin = i - 1 if i > 0 and data[i - 1] == 0 else i  # a 4-byte start code
        nals.append((begin, data[i + 3] & 0x1F, bool(data[i + 4] & 0x80)))
        i = data.find(b"\x00\x00\x01", i + 3)
    pictures, begin, key, has_slice = [], None, False, False
    for pos, typ, first_mb0 in nals:
        vcl = typ in (1, 5)
        if has_slice and ((typ in (6, 7, 8, 9)) or (vcl and first_mb0)):
            pictures.append((data[begin:pos], key))
            begin, key, has_slice = None, False, False
        if begin is None:
            begin = pos
        key = key or typ == 5
        has_slice = has_slice or vcl
    if has_slice:
        pictures.append((data[begin:], key))
    if not pictures or not pictures[0][1]:
        raise ValueError("%s: no H.264 pictures, or the first is not a key frame" % path)
    return pictures


class FileCamera:
    """One mount sending a pre-encoded file as it is, looping (see the module doc).

    The pictures are pushed into an appsrc with times at fps from the
    pipeline's running time at its first picture on, continuing across
    loops; identity sync=true holds each until its time. A pad probe after
    it writes the timeline. Each new pipeline (the first client, or one
    after all clients left) starts again at the mount's start.
    """

    def __init__(self, mods, pictures, fps, start, mount, timeline):
        GLib, Gst, GstRtspServer = mods
        self.Gst = Gst
        self.pictures = pictures
        self.duration = Gst.SECOND // fps
        self.start = start  # index of the picture the mount starts at (a key frame)
        self.mount = mount
        self.timeline = timeline  # (file, lock) or None
        self.factory = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(
            "( appsrc name=src is-live=true format=time "
            "! identity name=pace sync=true "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        self.factory.set_shared(True)
        self.factory.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, factory, media):
        Gst = self.Gst
        bin_ = media.get_element()
        src = bin_.get_by_name("src")
        src.set_property("caps", Gst.Caps.from_string("video/x-h264,stream-format=byte-stream,alignment=au"))
        run = {"pushed": 0, "sent": 0, "t0": None}  # this pipeline's own counters
        src.connect("need-data", self.on_need_data, run)
        bin_.get_by_name("pace").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.on_sent, run)

    def on_need_data(self, src, length, run):
        """Streaming thread: pushes the next picture, stamped at its time."""
        Gst = self.Gst
        if run["t0"] is None:
            t = src.get_current_running_time()
            run["t0"] = t if t != Gst.CLOCK_TIME_NONE else 0
        n = run["pushed"]
        data, key = self.pictures[(self.start + n) % len(self.pictures)]
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = buf.dts = run["t0"] + n * self.duration
        buf.duration = self.duration
        if not key:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        run["pushed"] = n + 1
        src.emit("push-buffer", buf)

    def on_sent(self, pad, info, run):
        """Streaming thread: a picture leaves at its time; log a loop's start."""
        index = (self.start + run["sent"]) % len(self.pictures)
        first = run["sent"] == 0
        run["sent"] += 1
        if self.timeline and (first or index == 0):
            zero = time.time_ns() - index * self.duration
            f, lock = self.timeline
            with lock:
                f.write("%s %d %d\n" % (self.mount, zero, index * self.duration if first else 0))
                f.flush()
        return self.Gst.PadProbeReturn.OK


def serve_file(mods, args, server):
    """Mounts --cameras FileCameras of --file; returns their URLs."""
    pictures = read_pictures(args.file)
    keys = [i for i, (_, key) in enumerate(pictures) if key]
    timeline = (open(args.timeline, "a"), threading.Lock()) if args.timeline else None
    urls = []
    for i in range(args.cameras):
        mount = args.path if args.cameras == 1 else "%s%d" % (args.path, i)
        # The key frame at or before i x stagger into the file (looping).
        want = round(i * args.stagger * args.fps) % len(pictures)
        start = max(k for k in keys if k <= want)
        cam = FileCamera(mods, pictures, args.fps, start, mount, timeline)
        server.get_mount_points().add_factory(mount, cam.factory)
        urls.append("rtsp://%s:%d%s" % (args.host, args.port, mount))
    return urls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--keyframe-interval", type=float, default=1.0, help="seconds between keyframes (default 1)")
    ap.add_argument("--color", default="808080", help="solid colour RRGGBB (default grey)")
    ap.add_argument("--pattern", default="", help="videotestsrc pattern instead of a solid colour (e.g. smpte, ball)")
    ap.add_argument("--file", default="", help="serve this H.264 byte stream (Annex B, no B-frames) as it is, looping")
    ap.add_argument("--cameras", type=int, default=1, help="with --file: this many mounts, PATH0, PATH1, ... (default 1: PATH)")
    ap.add_argument("--stagger", type=float, default=0.0, help="with --file: mount i starts i x this many seconds into the file")
    ap.add_argument("--timeline", default="", help="with --file: append each mount's loop starts to this file")
    ap.add_argument("--check", action="store_true", help="exit 0 if GStreamer and its plugins are installed")
    args = ap.parse_args()

    mods, missing = load_gst()
    if args.check:
        if missing:
            say("missing " + missing)
            return 1
        say("ok")
        return 0
    if missing:
        print("rtsp-server: " + missing, file=sys.stderr)
        return 1
    GLib, Gst, GstRtspServer = mods

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    if args.file:
        try:
            urls = serve_file(mods, args, server)
        except (OSError, ValueError) as e:
            print("rtsp-server: %s" % e, file=sys.stderr)
            return 1
        cam = None
    else:
        cam = Camera(mods, args)
        server.get_mount_points().add_factory(args.path, cam.factory)
        urls = ["rtsp://%s:%d%s" % (args.host, args.port, args.path)]
    if server.attach(None) == 0:
        print("rtsp-server: cannot listen on %s:%d" % (args.host, args.port), file=sys.stderr)
        return 1

    loop = GLib.MainLoop()

    def read_stdin():
        # EOF on stdin (the test process died) also ends the server, so a
        # crashed test never leaves a camera running.
        for line in sys.stdin:
            line = line.strip()
            if line == "quit":
                break
            if cam is None:
                say("error %s: a --file server takes no commands but quit" % line)
                continue
            GLib.idle_add(cam.command, line)
        GLib.idle_add(loop.quit)

    threading.Thread(target=read_stdin, daemon=True).start()
    say("ready " + " ".join(urls))
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

Run it with /usr/bin/python3: a pyenv python3 first on PATH cannot see
python3-gi.

    /usr/bin/python3 scripts/rtsp-server.py --port 8554 --fps 25 --color 808080
    /usr/bin/python3 scripts/rtsp-server.py --keyframe-interval 8   # a "smart codec" camera
    /usr/bin/python3 scripts/rtsp-server.py --check   # exit 0 when everything it needs is installed
"""

import argparse
import sys
import threading


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

    cam = Camera(mods, args)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.path, cam.factory)
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
            GLib.idle_add(cam.command, line)
        GLib.idle_add(loop.quit)

    threading.Thread(target=read_stdin, daemon=True).start()
    say("ready rtsp://%s:%d%s" % (args.host, args.port, args.path))
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

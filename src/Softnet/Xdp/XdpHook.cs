namespace Softnet.Xdp;

/// <summary>
/// Where XDP_TX and XDP_REDIRECT frames leave: a device's transmit (ndo_xdp_xmit), or a capture of what would have been
/// sent. Called on the NAPI thread of the queue; returns false when the frame could not be queued (counted as an error).
/// </summary>
public interface IXdpTransmit
{
    bool Transmit(ReadOnlySpan<byte> frame, long nowNs);
}

/// <summary>
/// One RX queue's XDP program instance, as the driver holds it (the prog pointer in ice_rx_ring plus the NAPI context it
/// runs in): run once per frame, and after XDP_REDIRECT asked where the frame goes (xdp_do_redirect reading
/// bpf_redirect_info).
/// </summary>
public abstract class XdpQueueHook
{
    /// <summary>Runs the program on <paramref name="xdp"/>, which it may change in place, at replay time <paramref name="nowNs"/>.</summary>
    public abstract XdpAction Run(ref XdpBuff xdp, long nowNs);

    /// <summary>After <see cref="XdpAction.Redirect"/>: the target the program chose, consumed (cleared) by the call;
    /// null when there is none (the redirect fails, as xdp_do_redirect's -EINVAL).</summary>
    public abstract IXdpTransmit? TakeRedirect();
}

/// <summary>
/// A program attached to a device (ip link set DEV xdp ...): the same program on every RX queue, each queue getting its
/// own <see cref="XdpQueueHook"/> for its NAPI CPU.
/// </summary>
public abstract class XdpAttachment
{
    /// <summary>The hook for RX queue <paramref name="queue"/> polled on <paramref name="cpu"/>; <paramref name="tx"/> is the
    /// port's transmit side (XDP_TX and the fallback for redirects), or null.</summary>
    public abstract XdpQueueHook CreateHook(int queue, int cpu, IXdpTransmit? tx);
}

/// <summary>A C# <see cref="XdpProgram"/> as an attachment: it has no redirect info, so a redirect goes to the port's
/// transmit side.</summary>
public sealed class DelegateXdpAttachment(XdpProgram program) : XdpAttachment
{
    public XdpProgram Program { get; } = program;

    public override XdpQueueHook CreateHook(int queue, int cpu, IXdpTransmit? tx) => new Hook(Program, tx);

    private sealed class Hook(XdpProgram program, IXdpTransmit? tx) : XdpQueueHook
    {
        public override XdpAction Run(ref XdpBuff xdp, long nowNs) => program(ref xdp);
        public override IXdpTransmit? TakeRedirect() => tx;
    }
}

/// <summary>
/// The transmit side as a capture file (`softnet replay --xdp-tx FILE`): every XDP_TX / XDP_REDIRECT frame as it left,
/// after the program's changes, stamped with the replay clock. Queues on several NAPI threads share it under a lock.
/// </summary>
public sealed class XdpTxCapture(Capture.ICaptureWriter writer) : IXdpTransmit, IDisposable
{
    private readonly Lock _lock = new();

    /// <summary>Frames written.</summary>
    public long Frames { get; private set; }

    /// <summary>Base added to the replay clock (which starts at 1 ns) so the capture carries the input's times.</summary>
    public long TimeBaseNs { get; set; }

    public bool Transmit(ReadOnlySpan<byte> frame, long nowNs)
    {
        lock (_lock)
        {
            writer.Write(TimeBaseNs + nowNs, frame);
            Frames++;
        }
        return true;
    }

    public void Dispose() => writer.Dispose();
}

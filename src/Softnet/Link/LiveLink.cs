using Softnet.Packets;

namespace Softnet.Link;

/// <summary>
/// The far side of a device bound to a real interface (`softnet run --bind NS:DEV=IFNAME`): a live port's transmit
/// ring for what the device sends, and its link state for the device's carrier.
/// </summary>
public interface IDeviceWire
{
    /// <summary>Queues a copy of the frame (MAC header first) for the interface; false when the port had no room.</summary>
    bool Send(ReadOnlySpan<byte> frame);

    /// <summary>The interface's carrier as last seen (IFF_UP and IFF_RUNNING).</summary>
    bool Carrier { get; }
}

/// <summary>
/// A device whose wire is a real interface: ndo_start_xmit copies the frame into the live port's TX ring, as a NIC
/// driver maps it for DMA. The kind a device takes when it is bound (<see cref="Device.BindWire"/>); scenarios do not
/// create it by name.
/// </summary>
public sealed class LiveLink : LinkKind
{
    internal static readonly LiveLink Instance = new();

    public override string Name => "softnet-live";

    public override bool HasCarrier(Device dev) => dev.Wire is { Carrier: true };

    /// <summary>The port offers no offloads: a GRO-built skb is segmented, and a checksum left partial completed, in
    /// software first (validate_xmit_skb, <see cref="SoftwareGso"/>). A frame the port has no room for is a TX drop.</summary>
    public override DropReason Xmit(NetStack stack, Device dev, Skb skb)
    {
        var wire = dev.Wire;
        DropReason reason = DropReason.None;
        if (wire is null || !wire.Carrier) reason = DropReason.DeviceDown;
        else if (SoftwareGso.Needed(skb)) reason = SoftwareGso.Transmit(skb, wire);
        else if (!wire.Send(stack.Linearize(skb))) reason = DropReason.TxRingFull;
        if (reason != DropReason.None) dev.TxDropped++;
        skb.Free();
        return reason;
    }
}

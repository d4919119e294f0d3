using Softnet.Packets;

namespace Softnet.Gro;

/// <summary>What a packet tap (tcpdump on the receiving device) sees of an skb leaving GRO: the MAC header
/// followed by the packet from skb->data, with the rewritten headers of a merged skb and all of its payload.</summary>
public static class GroTap
{
    /// <summary>Bytes <see cref="ToFrame"/> writes for <paramref name="skb"/>.</summary>
    public static int FrameLength(Skb skb) => MacLength(skb) + skb.Len;

    /// <summary>Linearize <paramref name="skb"/> into <paramref name="destination"/>; returns the length, or -1 if it
    /// does not fit.</summary>
    public static int ToFrame(Skb skb, Span<byte> destination)
    {
        int mac = MacLength(skb);
        int total = mac + skb.Len;
        if (destination.Length < total) return -1;
        if (mac > 0) skb.HeadBuffer.Slice(skb.MacHeader, mac).CopyTo(destination);
        if (!skb.CopyBits(0, destination.Slice(mac, skb.Len))) return -1;
        return total;
    }

    public static byte[] ToArray(Skb skb)
    {
        var a = new byte[FrameLength(skb)];
        ToFrame(skb, a);
        return a;
    }

    /// <summary>Bytes of MAC header in front of skb->data (0 when data is still at the MAC header).</summary>
    public static int MacLength(Skb skb) => skb.MacHeaderWasSet && skb.MacHeader < skb.Data ? skb.Data - skb.MacHeader : 0;
}

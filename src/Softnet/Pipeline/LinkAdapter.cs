using Softnet.Capture;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Pipeline;

/// <summary>
/// The virtual NIC receives Ethernet frames. Captures taken on other link types (Linux cooked SLL/SLL2,
/// raw IP) are given a synthetic Ethernet header carrying the same EtherType, so they cross the same path.
/// </summary>
public static class LinkAdapter
{
    /// <summary>Writes the frame as Ethernet into <paramref name="scratch"/> when needed; returns the frame to use.</summary>
    public static DropReason ToEthernet(LinkType link, ReadOnlySpan<byte> frame, Span<byte> scratch, out int length, out bool usedScratch)
    {
        length = frame.Length;
        usedScratch = false;
        ushort etherType;
        int headerLength;
        ReadOnlySpan<byte> source = default;
        switch (link)
        {
            case LinkType.Ethernet:
                return DropReason.None;
            case LinkType.Raw or LinkType.Ipv4 or LinkType.Ipv6:
                if (frame.Length == 0) return DropReason.IpHeaderTruncated;
                int version = link == LinkType.Ipv4 ? 4 : link == LinkType.Ipv6 ? 6 : frame[0] >> 4;
                etherType = version switch { 4 => (ushort)0x0800, 6 => (ushort)0x86DD, _ => (ushort)0 };
                if (etherType == 0) return DropReason.IpBadVersion;
                headerLength = 0;
                break;
            case LinkType.LinuxSll or LinkType.LinuxSll2:
                if (!LinuxSllView.TryParse(frame, link == LinkType.LinuxSll2, out var sll, out var reason)) return reason;
                etherType = sll.Protocol;
                if (sll.AddressLength == 6) source = sll.Address;
                headerLength = sll.HeaderLength;
                break;
            default:
                return DropReason.UnsupportedLinkType;
        }
        int payload = frame.Length - headerLength;
        if (14 + payload > scratch.Length) return DropReason.FrameTooLong;
        // A zero destination; the source is the SLL address when it is a MAC.
        EthernetView.Write(scratch, 0, source.Length == 6 ? EthernetView.ReadMac(source) : 0, etherType);
        frame[headerLength..].CopyTo(scratch[14..]);
        length = 14 + payload;
        usedScratch = true;
        return DropReason.None;
    }
}

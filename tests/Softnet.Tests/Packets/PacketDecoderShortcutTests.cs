using System.Buffers.Binary;
using System.Runtime.InteropServices;
using CsCheck;
using Softnet.Capture;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Xunit;

namespace Softnet.Tests.Packets;

/// <summary>The decoder's shortcut for Ethernet + IPv4 + UDP or TCP frames must be invisible: it takes a frame only when the
/// layer-by-layer decode would pass it, and then leaves every field as that decode does; <see cref="PacketDecoder.Classify"/>
/// gives that decode's reason and protocols.</summary>
public class PacketDecoderShortcutTests
{
    private static byte[] UdpFrame(int payload, ushort dport = 5001)
        => TestFrames.Ethernet(EtherTypes.Ipv4, TestFrames.Ipv4(IpProtocols.Udp, TestFrames.Udp(40000, dport, new byte[payload])));

    /// <summary>A TCP segment with the usual options of a Linux data segment (NOP NOP timestamps), or none.</summary>
    private static byte[] TcpFrame(int payload, bool options = true)
        => TestFrames.Ethernet(EtherTypes.Ipv4, TestFrames.Ipv4(IpProtocols.Tcp, TestFrames.Tcp(40000, 5201, 1000, 2000, TcpFlags.Ack | TcpFlags.Psh, 502,
            options ? [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2] : [], new byte[payload])));

    private static byte[] Bytes(in DecodedPacket p) => MemoryMarshal.AsBytes(new ReadOnlySpan<DecodedPacket>(in p)).ToArray();

    /// <summary>Decode (shortcut first) and the layers alone agree on the reason and on every byte of the result; a frame
    /// the shortcut takes is one the layers pass.</summary>
    private static bool AssertSame(byte[] frame)
    {
        bool took = PacketDecoder.TryDecodeEthernetIpv4(frame, out var fast);
        var layers = PacketDecoder.DecodeLayers(frame, LinkType.Ethernet, out var slow);
        var decoded = PacketDecoder.Decode(frame, LinkType.Ethernet, out var both);
        Assert.Equal(layers, decoded);
        Assert.Equal(Bytes(slow), Bytes(both));
        // The decode stack's question (reason and protocols only) has the same answer.
        Assert.Equal(layers, PacketDecoder.Classify(frame, LinkType.Ethernet, out var protocols));
        Assert.Equal(slow.Protocols, protocols);
        if (took)
        {
            Assert.Equal(DropReason.None, layers);
            Assert.Equal(Bytes(slow), Bytes(fast));
        }
        return took;
    }

    [Fact]
    public void Plain_udp_takes_the_shortcut_with_the_layers_fields()
    {
        foreach (int payload in new[] { 0, 1, 18, 22, 1472 }) Assert.True(AssertSame(UdpFrame(payload)));
        // Ethernet padding after the datagram: still the shortcut, the lengths are the IP ones.
        Assert.True(AssertSame(TestFrames.Concat(UdpFrame(4), new byte[20])));
    }

    [Fact]
    public void Tcp_with_and_without_options_takes_the_shortcut_with_the_layers_fields()
    {
        foreach (int payload in new[] { 0, 1, 1448 })
        {
            Assert.True(AssertSame(TcpFrame(payload)));
            Assert.True(AssertSame(TcpFrame(payload, options: false)));
        }
        Assert.True(AssertSame(TestFrames.Concat(TcpFrame(0, options: false), new byte[6]))); // a pure ACK padded to 60 bytes
        Assert.True(AssertSame(TestFrames.TcpSack())); // timestamps and two SACK blocks, URG
    }

    [Fact]
    public void Mutated_tcp_headers_decode_the_same_either_way()
    {
        // The data offset below, at and past its limits, the options' bytes (lengths that overrun, kinds), the IP total
        // length around the segment's end and the frame cut short.
        int took = 0, runs = 0;
        Gen.Select(Gen.Int[0, 24], Gen.Int[0, 15], Gen.Int[-8, 8], Gen.Int[0, 11], Gen.Byte, Gen.Int[-4, 0]).Sample((payload, doff, totalDelta, at, value, cut) =>
        {
            byte[] f = TcpFrame(payload, options: doff % 2 == 0);
            int total = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)Math.Max(0, total + totalDelta));
            if (doff > 3) f[46] = (byte)(doff << 4 | (f[46] & 0x0F));
            if (f.Length > 54 + at && value % 3 == 0) f[54 + at] = value;
            var sized = f.AsSpan(0, Math.Max(0, f.Length + cut * 4)).ToArray();
            if (AssertSame(sized)) Interlocked.Increment(ref took);
            Interlocked.Increment(ref runs);
        }, iter: 20000);
        Assert.InRange(took, runs / 100, runs - runs / 10);
    }

    [Fact]
    public void Other_frames_take_the_layers()
    {
        Assert.False(AssertSame(UdpFrame(8, UdpView.VxlanPort)));
        // The property tests' seeds (IPv6, VLAN, VXLAN, ICMP, fragments ...): whichever way each goes, the same result.
        foreach (var seed in PacketDecoderPropertyTests.Seeds) AssertSame(seed);
        Assert.False(AssertSame(TestFrames.Vlan8021qUdp()));
    }

    [Fact]
    public void Mutated_headers_decode_the_same_either_way()
    {
        // Every header field the shortcut judges, set near and across its limits, on frames cut or padded around the
        // datagram's end: each answer (a pass, or which drop) must match the layers'.
        int took = 0, runs = 0;
        Gen.Select(Gen.Int[0, 40], Gen.Int[-3, 3], Gen.Int[0, 12], Gen.Int[0, 12], Gen.Int[0, 9], Gen.Int[-2, 2]).Sample((payload, cut, totalDelta, ulenDelta, field, extra) =>
        {
            byte[] f = UdpFrame(payload);
            int total = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
            int ulen = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(38));
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)Math.Max(0, total + totalDelta - 6));
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), (ushort)Math.Max(0, ulen + ulenDelta - 6));
            switch (field)
            {
                case 1: f[14] = 0x46; break;                      // IHL 6
                case 2: f[14] = 0x44; break;                      // IHL 4
                case 3: f[14] = 0x65; break;                      // version 6
                case 4: f[20] |= 0x20; break;                     // MF
                case 5: f[21] = 1; break;                         // fragment offset
                case 6: f[23] = IpProtocols.Icmp; break;
                case 7: BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), EtherTypes.Vlan); break;
                case 8: BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), UdpView.VxlanPort); break;
                case 9: f[20] |= 0x80; break;                     // the reserved flag: no fragment, still UDP
            }
            int length = Math.Max(0, f.Length + cut * 3 + extra);
            var sized = new byte[length];
            f.AsSpan(0, Math.Min(length, f.Length)).CopyTo(sized);
            if (AssertSame(sized)) Interlocked.Increment(ref took);
            Interlocked.Increment(ref runs);
        }, iter: 20000);
        // Both ways are exercised, not just the fallback (Sample runs on several threads).
        Assert.InRange(took, runs / 100, runs - runs / 10);
    }
}

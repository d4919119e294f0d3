using CsCheck;
using Softnet.Gro;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Gro;

/// <summary>The software flow hash (the Hash variant's key and GRO's per-flow statistics) reads an option-less IPv4
/// header in place; behind a VLAN tag the same header goes through the general parser, which must agree.</summary>
public class GroFlowHashTests
{
    [Fact]
    public void Ipv4_fast_path_matches_the_general_parser()
    {
        Gen.Select(Gen.Byte.Array[20, 72], Gen.Int[0, 120], Gen.Int[0, 3]).Sample((bytes, total, protoIndex) =>
        {
            bytes[0] = 0x45;
            bytes[2] = (byte)(total >> 8);
            bytes[3] = (byte)total;
            bytes[9] = protoIndex switch { 0 => IpProtocols.Tcp, 1 => IpProtocols.Udp, 2 => 1, _ => bytes[9] };
            byte[] tagged = [0x00, 0x05, 0x08, 0x00, .. bytes];
            Assert.Equal(FlowHash.Compute(tagged, EtherTypes.Vlan), FlowHash.Compute(bytes, EtherTypes.Ipv4));
        });
    }
}

namespace Softnet.Packets;

/// <summary>IANA protocol numbers used by the datapath.</summary>
public static class IpProtocols
{
    public const byte HopByHop = 0;
    public const byte Icmp = 1;
    public const byte Igmp = 2;
    public const byte IpIp = 4;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Ipv6 = 41;
    public const byte Routing = 43;
    public const byte Fragment = 44;
    public const byte Gre = 47;
    public const byte Esp = 50;
    public const byte Ah = 51;
    public const byte Icmpv6 = 58;
    public const byte NoNextHeader = 59;
    public const byte DestinationOptions = 60;
    public const byte Sctp = 132;
}

namespace Softnet.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("usage: Softnet.Bench parse [--capture F] [--json FILE]");
        return 2;
    }
}

package starling_test

import (
	"fmt"

	"starling.dev/starling"
)

func ExampleCheckPostText() {
	fmt.Println(starling.CheckPostText("hello, followers", 500))
	fmt.Println(starling.CheckPostText("bell\a", 500))
	fmt.Println(starling.CheckPostText("   ", 500))
	fmt.Println(starling.CheckPostText("twelve chars", 5))
	// Output:
	// <nil>
	// text contains U+0007 at character 5, which XML cannot carry
	// text is empty or only whitespace
	// text has 12 characters; the limit is 5
}

func ExampleCleanXMLText() {
	fmt.Printf("%q\n", starling.CleanXMLText("nul\x00 and esc\x1b gone, é stays"))
	// Output:
	// "nul and esc gone, é stays"
}

func ExampleValidUsername() {
	for _, name := range []string{"alice", "Alice", "al.ice", "al_1ce"} {
		fmt.Println(name, starling.ValidUsername(name))
	}
	// Output:
	// alice true
	// Alice false
	// al.ice false
	// al_1ce true
}

func ExampleProfile_Name() {
	fmt.Println(starling.Profile{Username: "alice", DisplayName: "Alice A."}.Name())
	fmt.Println(starling.Profile{Username: "bob"}.Name())
	// Output:
	// Alice A.
	// bob
}
